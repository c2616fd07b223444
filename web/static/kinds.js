// The channel kinds of the Notifications card: each kind's fields, as CONTRACT section 6
// names them, and how they map to the GraphQL type and save input.
//
// A field: key (the input/type field), label, type (text, url, number, email-list, select,
// secret), setFlag/hint for secrets (the type says only whether one is set), options and
// initial for selects and defaults, showIf(values) for fields of one provider only.

const smtpOnly = (values) => values.provider !== "SENDGRID";
const sendgridOnly = (values) => values.provider === "SENDGRID";

export const KINDS = [
  {
    kind: "SLACK",
    label: "Slack",
    fields: [
      { key: "webhookUrl", label: "Slack Webhook URL", type: "secret", setFlag: "webhookUrlSet", hint: "webhookUrlHint" },
      { key: "botToken", label: "Bot Token", type: "secret", setFlag: "botTokenSet",
        help: "Or a bot token (xoxb-…) and a channel instead of the webhook URL." },
      { key: "channel", label: "Slack Channel", type: "text", help: "A channel ID such as C0123ABCD, or #name." },
    ],
  },
  {
    kind: "WEBHOOK",
    label: "Webhook",
    fields: [
      { key: "url", label: "Webhook URL", type: "secret", setFlag: "urlSet", hint: "urlHint" },
      { key: "signingSecret", label: "Signing Secret", type: "secret", setFlag: "signingSecretSet",
        help: "whsec_… (Standard Webhooks); optional." },
    ],
  },
  {
    kind: "EMAIL",
    label: "Email",
    fields: [
      { key: "provider", label: "Provider", type: "select", initial: "SMTP",
        options: [["SMTP", "SMTP"], ["SENDGRID", "SendGrid"]] },
      { key: "to", label: "Email To", type: "email-list", help: "One or more addresses, separated by commas." },
      { key: "smtpHost", label: "SMTP Host", type: "text", showIf: smtpOnly },
      { key: "smtpPort", label: "SMTP Port", type: "number", initial: 587, showIf: smtpOnly },
      { key: "security", label: "Security", type: "select", initial: "STARTTLS", showIf: smtpOnly,
        options: [["STARTTLS", "STARTTLS"], ["TLS", "TLS (implicit, port 465)"], ["NONE", "None"]] },
      { key: "username", label: "SMTP Username", type: "text", showIf: smtpOnly, autocomplete: "off" },
      { key: "password", label: "SMTP Password", type: "secret", setFlag: "passwordSet", showIf: smtpOnly },
      { key: "sendgridApiKey", label: "SendGrid API Key", type: "secret", setFlag: "sendgridApiKeySet", showIf: sendgridOnly },
      { key: "fromAddress", label: "From Address", type: "text" },
    ],
  },
  {
    kind: "DISCORD",
    label: "Discord",
    fields: [{ key: "webhookUrl", label: "Discord Webhook URL", type: "secret", setFlag: "webhookUrlSet", hint: "webhookUrlHint" }],
  },
  {
    kind: "TELEGRAM",
    label: "Telegram",
    fields: [
      { key: "botToken", label: "Bot Token", type: "secret", setFlag: "botTokenSet" },
      { key: "chatId", label: "Chat ID", type: "text" },
    ],
  },
  {
    kind: "TEAMS",
    label: "Teams",
    fields: [{ key: "webhookUrl", label: "Teams Webhook URL", type: "secret", setFlag: "webhookUrlSet", hint: "webhookUrlHint" }],
  },
];

export const byKind = (kind) => KINDS.find((k) => k.kind === kind);

export const typeName = (kind) => `${titleCase(kind)}Channel`;
export const saveMutation = (kind) => `save${titleCase(kind)}Channel`;
export const inputType = (kind) => `${titleCase(kind)}ChannelInput`;

function titleCase(kind) {
  return kind.charAt(0) + kind.slice(1).toLowerCase();
}

/** The fields a query asks for to fill a kind's form (secrets: only set flags and hints). */
export function selection(kind) {
  const names = [];
  for (const field of byKind(kind).fields) {
    if (field.type === "secret") {
      names.push(field.setFlag);
      if (field.hint) names.push(field.hint);
    } else {
      names.push(field.key);
    }
  }
  return `... on ${typeName(kind)} { ${names.join(" ")} }`;
}

export const PRIORITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"];
export const MODES = [["REALTIME", "Realtime"], ["DIGEST", "Digest"]];
export const STATUSES = ["PENDING", "SENDING", "RETRYING", "DELIVERED", "FAILED", "SUPPRESSED"];
