// One labelled form field: its control, help, the server's error beside it, and for a saved
// secret an empty control with a "saved" placeholder and a Clear button.

import { h } from "./dom.js";

let serial = 0;

/** Builds the field; returns { root, control, setError(text), value(), reset(value) }. */
export function buildField(field, { value, secretSet, secretHint, onClear, disabled }) {
  const id = `f-${field.key}-${++serial}`;
  const help = field.help ? h("p", { id: `${id}-help`, className: "help" }, field.help) : null;
  const error = h("p", { id: `${id}-error`, className: "error field-error", role: "alert" });
  const describedBy = [help && `${id}-help`, `${id}-error`].filter(Boolean).join(" ");
  const control = makeControl(field, id, describedBy);
  if (field.type === "secret") {
    control.placeholder = secretSet
      ? `saved${secretHint ? ` (${secretHint})` : ""}: type to replace`
      : "not set";
  } else {
    setValue(control, field, value);
  }
  control.disabled = Boolean(disabled);
  const clear = field.type === "secret" && secretSet
    ? h("button", { type: "button", className: "clear", onclick: onClear, disabled: Boolean(disabled) },
        "Clear", h("span", { className: "visually-hidden" }, ` ${field.label}`))
    : null;
  const line = clear ? h("div", { className: "with-button" }, control, clear) : control;
  const root = h("div", { className: "field" }, h("label", { for: id }, field.label), line, help, error);
  return {
    root,
    control,
    setError(text) {
      error.textContent = text || "";
      control.setAttribute("aria-invalid", text ? "true" : "false");
    },
    value: () => readValue(control, field),
  };
}

function makeControl(field, id, describedBy) {
  const common = { id, name: field.key, "aria-describedby": describedBy };
  if (field.type === "select") {
    return h("select", common, field.options.map(([value, label]) => h("option", { value }, label)));
  }
  const types = { secret: "password", number: "number", url: "url", "datetime-local": "datetime-local" };
  const input = h("input", { ...common, type: types[field.type] || "text", spellcheck: "false" });
  if (field.type === "secret" || field.autocomplete) input.autocomplete = "off";
  if (field.type === "secret") input.autocomplete = "new-password";
  if (field.type === "number") input.inputMode = "numeric";
  return input;
}

function setValue(control, field, value) {
  const initial = value === undefined || value === null ? field.initial : value;
  if (field.type === "email-list" || field.type === "list") {
    control.value = Array.isArray(initial) ? initial.join(", ") : initial || "";
  } else {
    control.value = initial === undefined || initial === null ? "" : String(initial);
  }
}

function readValue(control, field) {
  const raw = control.value.trim();
  if (field.type === "email-list" || field.type === "list") {
    const items = raw.split(",").map((item) => item.trim()).filter(Boolean);
    return items.length ? items : null;
  }
  if (field.type === "number") return raw === "" ? null : Number(raw);
  if (field.type === "datetime-local") return raw === "" ? null : new Date(raw).toISOString();
  return raw === "" ? null : raw;
}

/** The value of an ISO timestamp for a datetime-local control (local time, minutes). */
export function localInputValue(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}
