// The Delivery log: recent deliveries with a status filter, attempts on demand, Retry on
// failed rows; refreshed every few seconds while it is open and the tab is visible.

import { $, fill, h, when } from "./dom.js";
import { gql } from "./gql.js";
import { STATUSES } from "./kinds.js";

const REFRESH_MS = 2000;

export class DeliveryLog {
  constructor() {
    this.timer = null;
    this.expanded = new Set();
    this.attempts = new Map();
    fill($("status-filter"), h("option", { value: "" }, "All"),
      STATUSES.map((s) => h("option", { value: s }, s.charAt(0) + s.slice(1).toLowerCase())));
    $("status-filter").addEventListener("change", () => this.refresh());
    $("deliveries-toggle").addEventListener("click", () => this.setOpen($("deliveries-body").hidden));
  }

  start() {
    this.setOpen(true);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  setOpen(open) {
    $("deliveries-body").hidden = !open;
    $("deliveries-toggle").setAttribute("aria-expanded", String(open));
    $("deliveries-toggle").textContent = open ? "Hide" : "Show";
    this.stop();
    if (open) {
      this.refresh();
      this.timer = setInterval(() => {
        if (document.visibilityState === "visible") this.refresh();
      }, REFRESH_MS);
    }
  }

  async refresh() {
    const status = $("status-filter").value || null;
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    try {
      const data = await gql(
        `query Log($filter: DeliveryFilter) { deliveries(first: 50, filter: $filter) {
          totalCount nodes { id status attemptCount lastError lastStatusCode createdAt channelKind
            channel { name } event { id type } } } }`,
        { filter: status ? { status } : null },
      );
      if (ticket !== this.ticket) return; // a later refresh (another filter) answers for now
      $("deliveries-error").textContent = "";
      this.render(data.deliveries);
    } catch (error) {
      $("deliveries-error").textContent = error.message;
    }
  }

  render(connection) {
    const shown = JSON.stringify([connection, [...this.expanded], [...this.attempts]]);
    if (shown === this.shown) return; // unchanged: keep the DOM (and a screen reader) still
    this.shown = shown;
    // a refresh must not take the keyboard focus away from the row it was on
    const focused = document.activeElement && document.activeElement.dataset.key;
    const rows = connection.nodes.flatMap((d) => this.rows(d));
    fill($("deliveries-rows"), rows);
    const again = focused && $("deliveries-rows").querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
    $("deliveries-state").textContent = connection.totalCount
      ? `${connection.nodes.length} of ${connection.totalCount} deliveries.`
      : "No deliveries yet.";
  }

  rows(delivery) {
    const open = this.expanded.has(delivery.id);
    const actions = h("td", {}, h("div", { className: "row-actions" },
      h("button", { type: "button", "aria-expanded": String(open), "data-key": `attempts-${delivery.id}`,
        onclick: () => this.toggleAttempts(delivery) },
        open ? "Hide attempts" : "Attempts"),
      delivery.status === "FAILED"
        ? h("button", { type: "button", "data-key": `retry-${delivery.id}`,
            onclick: (e) => this.retry(delivery, e.currentTarget) },
            "Retry", h("span", { className: "visually-hidden" }, ` ${delivery.event.type} to ${channelName(delivery)}`))
        : null));
    // data-label: the column's name, shown before each value when the table is stacked (narrow)
    const cell = (label, content, className = null) => h("td", { "data-label": label, className }, content);
    const row = h("tr", { className: `status-${delivery.status.toLowerCase()}` },
      cell("Time", h("time", { datetime: delivery.createdAt }, when(delivery.createdAt))),
      cell("Event type", delivery.event.type, "code"),
      cell("Channel", channelName(delivery)),
      cell("Status", h("span", { className: "pill" }, delivery.status)),
      cell("Attempts", String(delivery.attemptCount)),
      cell("Last error", delivery.lastError || "", "error-text"),
      actions);
    if (!open) return [row];
    return [row, h("tr", { className: "attempts-row" }, h("td", { colspan: "7" }, this.attemptList(delivery)))];
  }

  attemptList(delivery) {
    const attempts = this.attempts.get(delivery.id);
    if (!attempts) return "Loading attempts…";
    if (!attempts.length) return "No attempt yet.";
    return h("ol", { className: "attempts" }, attempts.map((a) => h("li", {},
      `#${a.number} ${when(a.startedAt)} · ${a.ok ? "OK" : "Failed"}` +
        `${a.statusCode ? ` · HTTP ${a.statusCode}` : ""} · ${Math.round(a.durationMs)} ms` +
        `${a.error ? ` · ${a.error}` : ""}`)));
  }

  async toggleAttempts(delivery) {
    if (this.expanded.has(delivery.id)) {
      this.expanded.delete(delivery.id);
    } else {
      this.expanded.add(delivery.id);
      const data = await gql(
        `query Attempts($id: ID!) { event(id: $id) { deliveries { id attempts {
          number startedAt durationMs ok statusCode error } } } }`,
        { id: delivery.event.id },
      );
      const found = data.event && data.event.deliveries.find((d) => d.id === delivery.id);
      this.attempts.set(delivery.id, found ? found.attempts : []);
    }
    await this.refresh();
  }

  async retry(delivery, button) {
    button.disabled = true;
    try {
      await gql(`mutation Retry($id: ID!) { retryDelivery(id: $id) { id status } }`, { id: delivery.id });
      this.attempts.delete(delivery.id);
    } catch (error) {
      $("deliveries-error").textContent = error.message;
    }
    await this.refresh();
    // the worker sends it within moments: look again soon rather than at the next tick
    for (const delay of [300, 800, 1500]) setTimeout(() => this.refresh(), delay);
  }
}

function channelName(delivery) {
  return delivery.channel ? delivery.channel.name : `(deleted ${delivery.channelKind.toLowerCase()})`;
}
