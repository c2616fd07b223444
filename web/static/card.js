// The Notifications card: the Channel picker, the chosen kind's fields and routing, Save
// Changes, Send Test, Test Connection (Email), and the list of every channel.

import { $, fill, h, forbid } from "./dom.js";
import { buildField, localInputValue } from "./fields.js";
import { gql } from "./gql.js";
import { KINDS, MODES, PRIORITIES, byKind, inputType, saveMutation, selection } from "./kinds.js";

const ROUTING = [
  { key: "eventTypes", label: "Event types", type: "list",
    help: "Comma-separated event type names; empty: every event type (unless categories are set)." },
  { key: "eventCategories", label: "Categories", type: "list", feature: "categories",
    help: "Comma-separated categories such as pipeline, deploy; empty: every category." },
  { key: "minPriority", label: "Minimum priority", type: "select", initial: "INFO",
    options: PRIORITIES.map((p) => [p, p.charAt(0) + p.slice(1).toLowerCase()]) },
  { key: "mode", label: "Mode", type: "select", initial: "REALTIME", options: MODES },
  { key: "mutedUntil", label: "Mute until", type: "datetime-local",
    help: "Deliveries until then are recorded as suppressed; empty: not muted." },
];
const NAME_FIELD = { key: "name", label: "Display name", type: "text" };

export class NotificationsCard {
  constructor({ features, role, onChange }) {
    this.features = features;
    this.editable = role === "EDITOR" || role === "ADMIN";
    this.onChange = onChange;
    this.kind = "SLACK";
    this.channels = [];
    this.status = null;
    this.controls = new Map();
    this.wire();
  }

  wire() {
    fill($("kind"), KINDS.map((k) => h("option", { value: k.kind }, k.label)));
    // Until the channels are read, there is nothing to edit (and no edit to lose to the load).
    $("kind").disabled = true;
    $("channel-state").textContent = "Loading the channels…";
    $("kind").addEventListener("change", () => this.show($("kind").value));
    $("channel-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    $("send-test").addEventListener("click", () => this.sendTest());
    $("test-connection").addEventListener("click", () => this.testConnection());
    $("all-channels-link").addEventListener("click", () => {
      $("channels").hidden = false;
    });
    $("save").disabled = true;
  }

  /** Reads every channel and the status, then shows the current kind. */
  async load(channelId = null) {
    const categories = this.features.categories ? "eventCategories" : "";
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    const data = await gql(`{
      notificationStatus { canSendTest channelCount }
      channels { id kind name configured enabled eventTypes ${categories} minPriority mode mutedUntil
        ${KINDS.map((k) => selection(k.kind)).join("\n")} }
    }`);
    if (ticket !== this.ticket) return; // a later load (after a save) has the newer state
    this.channels = data.channels;
    this.status = data.notificationStatus;
    if (channelId) this.selectedId = channelId;
    this.renderChannelList();
    this.show(this.kind);
    $("kind").disabled = false;
    $("save").disabled = !this.editable;
  }

  /** The channel the card edits: the chosen one of this kind, else the first of the kind. */
  current() {
    const ofKind = this.channels.filter((c) => c.kind === this.kind);
    return ofKind.find((c) => c.id === this.selectedId) || ofKind[0] || null;
  }

  show(kind) {
    if (kind !== this.kind) this.selectedId = null;
    this.kind = kind;
    $("kind").value = kind;
    const channel = this.current();
    this.controls.clear();
    fill($("kind-fields"), this.fieldsOf(kind, channel));
    fill($("routing-fields"), ROUTING.map((field) => this.routingField(field, channel)));
    this.applyProvider();
    this.describe(channel);
    this.updateButtons();
    $("form-error").textContent = "";
  }

  fieldsOf(kind, channel) {
    const values = channel || {};
    const name = this.addField(NAME_FIELD, values.name || byKind(kind).label, {});
    const fields = byKind(kind).fields.map((field) =>
      this.addField(field, values[field.key], {
        secretSet: Boolean(values[field.setFlag]),
        secretHint: field.hint ? values[field.hint] : null,
        onClear: () => this.clearSecret(field),
      }),
    );
    return [name, ...fields];
  }

  routingField(field, channel) {
    const values = channel || {};
    if (field.feature && !this.features[field.feature]) {
      const built = this.addField(field, null, {}, false);
      forbid(built.control, "This server does not route by category yet.");
      built.root.append(h("p", { className: "help" }, "Not supported by this server version."));
      return built.root;
    }
    const value = field.type === "datetime-local" ? localInputValue(values[field.key]) : values[field.key];
    return this.addField(field, value, {});
  }

  addField(field, value, extra, track = true) {
    const built = buildField(field, { value, disabled: !this.editable, ...extra });
    const loaded = track ? built.value() : undefined;
    if (track) this.controls.set(field.key, { field, built, loaded });
    if (field.key === "provider") built.control.addEventListener("change", () => this.applyProvider());
    return track ? built.root : built;
  }

  applyProvider() {
    const values = { provider: this.controls.get("provider")?.built.value() };
    for (const { field, built } of this.controls.values()) {
      if (field.showIf) built.root.hidden = !field.showIf(values);
    }
    const email = this.kind === "EMAIL";
    const smtp = email && values.provider !== "SENDGRID";
    $("test-connection").hidden = !smtp;
    $("test-connection-why").hidden = !smtp;
    $("connection-result").textContent = "";
  }

  describe(channel) {
    const count = this.channels.filter((c) => c.kind === this.kind).length;
    const state = !channel
      ? `No ${byKind(this.kind).label} channel yet: Save Changes creates it.`
      : `Editing “${channel.name}”${channel.configured ? "" : " (not configured yet)"}` +
        (count > 1 ? `, 1 of ${count} ${byKind(this.kind).label} channels.` : ".");
    $("channel-state").textContent = state;
  }

  renderChannelList() {
    const many = this.channels.length > 1;
    $("all-channels-line").hidden = !many;
    $("all-channels-link").textContent = `All channels (${this.channels.length})`;
    if (!many) $("channels").hidden = true;
    fill($("channel-list"), this.channels.map((channel) => h("li", {},
      h("button", { type: "button", className: "linklike", onclick: () => this.edit(channel) },
        `${channel.name}`),
      ` ${byKind(channel.kind)?.label || channel.kind} · ${channel.configured ? "configured" : "not configured"}` +
        `${channel.enabled ? "" : " · disabled"}`,
    )));
  }

  edit(channel) {
    this.selectedId = channel.id;
    this.kind = channel.kind;
    this.show(channel.kind);
    $("kind").focus();
  }

  updateButtons() {
    const canTest = this.editable && this.status && this.status.canSendTest;
    $("send-test").disabled = !canTest;
    $("send-test-why").textContent = !this.editable
      ? "Your role may read this configuration but not change or test it."
      : canTest ? "" : "Send Test needs at least one saved destination.";
    const smtpTest = this.editable && this.features.smtpTest;
    $("test-connection").disabled = !smtpTest;
    $("test-connection-why").textContent = !this.editable
      ? "Your role may not test connections."
      : this.features.smtpTest ? "Connects and logs in without sending mail." : "This server version cannot test SMTP connections.";
  }

  /** What the form changed: secrets typed in, other fields that differ from what was loaded. */
  edits() {
    const input = {};
    const channel = this.current();
    for (const [key, { field, built, loaded }] of this.controls) {
      if (built.root.hidden || key === "mutedUntil") continue;
      const value = built.value();
      if (field.type === "secret") {
        if (value !== null) input[key] = value;
      } else if (!channel ? value !== null : JSON.stringify(value) !== JSON.stringify(loaded)) {
        input[key] = value;
      }
    }
    return input;
  }

  clearErrors() {
    for (const { built } of this.controls.values()) built.setError("");
    $("form-error").textContent = "";
  }

  showErrors(errors) {
    const general = [];
    for (const error of errors) {
      const key = error.field && error.field[0];
      const slot = key && this.controls.get(key);
      if (slot && !slot.built.root.hidden) slot.built.setError(error.message);
      else general.push(error.message);
    }
    $("form-error").textContent = general.join(" ");
    const first = [...this.controls.values()].find((c) => c.built.control.getAttribute("aria-invalid") === "true");
    if (first) first.built.control.focus();
  }

  async save(extra = null) {
    this.clearErrors();
    $("save-status").textContent = "Saving…";
    const channel = this.current();
    const input = extra || this.edits();
    if (channel) input.id = channel.id;
    try {
      const payload = await this.saveInput(input);
      if (payload.errors.length) {
        $("save-status").textContent = "Not saved.";
        this.showErrors(payload.errors);
        return;
      }
      const id = payload.channel.id;
      if (!extra) await this.saveMute(id);
      $("save-status").textContent = "Saved.";
      this.selectedId = id;
      await this.load(id);
      this.onChange();
    } catch (error) {
      $("save-status").textContent = "Not saved.";
      $("form-error").textContent = error.message;
    }
  }

  async saveInput(input) {
    const mutation = saveMutation(this.kind);
    const data = await gql(
      `mutation Save($input: ${inputType(this.kind)}!) {
        ${mutation}(input: $input) { channel { id } errors { field code message } }
      }`,
      { input },
    );
    return data[mutation];
  }

  async saveMute(id) {
    const slot = this.controls.get("mutedUntil");
    const value = slot.built.value();
    if (JSON.stringify(value) === JSON.stringify(slot.loaded)) return;
    const data = await gql(
      `mutation Mute($id: ID!, $until: DateTime) {
        muteChannel(id: $id, until: $until) { errors { field code message } }
      }`,
      { id, until: value },
    );
    const errors = data.muteChannel.errors.map((e) => ({ ...e, field: ["mutedUntil"] }));
    if (errors.length) throw new Error(errors.map((e) => e.message).join(" "));
  }

  clearSecret(field) {
    if (!window.confirm(`Remove the saved ${field.label}?`)) return;
    this.save({ [field.key]: null });
  }

  async sendTest() {
    const list = $("test-results");
    fill(list, h("li", {}, "Sending a test to every configured channel…"));
    $("send-test").disabled = true;
    try {
      const data = await gql(`mutation { sendTest {
        results { channel { id name } ok statusCode error latencyMs }
        errors { field code message } } }`);
      const { results, errors } = data.sendTest;
      fill(list, errors.map((e) => h("li", { className: "failed" }, e.message)),
        results.map((r) => resultLine(r)));
      this.onChange();
    } catch (error) {
      fill(list, h("li", { className: "failed", role: "alert" }, `Failed: ${error.message}`));
    } finally {
      this.updateButtons();
    }
  }

  async testConnection() {
    const out = $("connection-result");
    out.textContent = "Connecting…";
    this.clearErrors();
    const channel = this.current();
    try {
      const data = await gql(
        `mutation Probe($id: ID, $input: EmailChannelInput) {
          testSmtpConnection(id: $id, input: $input) {
            ok stage error latencyMs errors { field code message } } }`,
        { id: channel ? channel.id : null, input: this.edits() },
      );
      const r = data.testSmtpConnection;
      if (r.errors.length) this.showErrors(r.errors); // input problems, beside their fields
      out.className = `status ${r.ok ? "ok" : "failed"}`;
      out.textContent = r.ok
        ? `Connection OK (${Math.round(r.latencyMs)} ms): no mail was sent.`
        : `Failed: ${r.stage || "CONNECT"}: ${r.error || "no answer"} (${Math.round(r.latencyMs)} ms)`;
    } catch (error) {
      out.className = "status failed";
      out.textContent = `Failed: ${error.message}`;
    }
  }
}

function resultLine(result) {
  const latency = `${Math.round(result.latencyMs)} ms`;
  const verdict = result.ok
    ? h("strong", { className: "ok" }, "OK")
    : h("strong", { className: "failed" }, "Failed:");
  const detail = result.ok ? "" : ` ${result.error || `HTTP ${result.statusCode}`}`;
  return h("li", {}, h("span", { className: "name" }, result.channel.name), " ", verdict, detail,
    h("span", { className: "latency" }, ` (${latency})`));
}
