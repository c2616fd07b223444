// The Events section: the event-type catalog by category, a switch per type (ADMIN) and
// its default priority.

import { $, fill, h } from "./dom.js";
import { gql } from "./gql.js";

export class Catalog {
  constructor({ role }) {
    this.admin = role === "ADMIN";
  }

  async load() {
    $("events-why").hidden = this.admin;
    $("events-why").textContent = "Only an ADMIN token may switch event types on or off.";
    try {
      const data = await gql(`{ eventTypes { name category description defaultPriority enabled builtIn } }`);
      this.render(data.eventTypes);
      return data.eventTypes;
    } catch (error) {
      $("events-error").textContent = error.message;
      return [];
    }
  }

  render(types) {
    const categories = [...new Set(types.map((t) => t.category))].sort();
    fill($("event-catalog"), categories.map((category) => h("section", { className: "category",
      "aria-labelledby": `cat-${category}` },
      h("h3", { id: `cat-${category}` }, category),
      h("ul", { className: "types" }, types.filter((t) => t.category === category).map((t) => this.row(t))))));
  }

  row(type) {
    const id = `type-${type.name}`;
    const toggle = h("input", { type: "checkbox", role: "switch", id, checked: type.enabled,
      "aria-describedby": `${id}-about`, disabled: !this.admin,
      title: this.admin ? null : "Only an ADMIN token may change the catalog.",
      onchange: (e) => this.setEnabled(type, e.currentTarget) });
    return h("li", {},
      h("div", { className: "switch-line" }, toggle, h("label", { for: id }, type.name)),
      h("p", { id: `${id}-about`, className: "help" },
        `${type.description} Default priority: ${type.defaultPriority}.${type.enabled ? "" : " Disabled."}`));
  }

  async setEnabled(type, control) {
    $("events-error").textContent = "";
    control.disabled = true;
    try {
      const data = await gql(
        `mutation Toggle($input: EventTypeInput!) { registerEventType(input: $input) { name enabled } }`,
        { input: { name: type.name, enabled: control.checked } },
      );
      type.enabled = data.registerEventType.enabled;
    } catch (error) {
      control.checked = type.enabled;
      $("events-error").textContent = error.message;
    } finally {
      const id = control.id;
      await this.load();
      const again = $(id); // the list was rebuilt: keep the keyboard where it was
      if (again) again.focus();
    }
  }
}
