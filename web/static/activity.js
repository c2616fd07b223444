// The Activity button (the bell): how many events arrived since it was last opened, and a
// list of recent events that the `events` subscription keeps live.

import { $, fill, h, when } from "./dom.js";
import { gql, session } from "./gql.js";
import { subscribe } from "./ws.js";

const SEEN = "tocsin.activitySeen";
const FIELDS = "id type title priority createdAt";
const KEEP = 50;

export class Activity {
  constructor({ live }) {
    this.live = live;
    this.events = [];
    this.unseen = 0;
    this.subscription = null;
    this.button = $("activity-button");
    this.panel = $("activity-panel");
    this.toggle = () => (this.panel.hidden ? this.open() : this.close());
    this.onKey = (event) => {
      if (event.key === "Escape" && !this.panel.hidden) {
        this.close();
        this.button.focus();
      }
    };
  }

  async start() {
    this.button.hidden = false;
    this.button.addEventListener("click", this.toggle);
    document.addEventListener("keydown", this.onKey);
    const data = await gql(`{ events(first: 20) { nodes { ${FIELDS} } } }`);
    this.events = data.events.nodes;
    const seen = localStorage.getItem(SEEN);
    this.unseen = seen ? this.events.filter((e) => e.createdAt > seen).length : 0;
    this.render();
    if (!this.live) {
      $("activity-state").textContent = "Live updates need a newer server; reopen to refresh.";
      return;
    }
    this.subscription = subscribe({
      query: `subscription { events { ${FIELDS} } }`,
      token: session.token,
      onData: (d) => this.arrived(d.events),
      onState: (state) => {
        $("activity-state").textContent = state === "live" ? "Live." : `Live updates: ${state}.`;
      },
      onError: (message) => {
        $("activity-state").textContent = `Live updates refused: ${message}`;
      },
    });
  }

  stop() {
    if (this.subscription) this.subscription.close();
    this.button.removeEventListener("click", this.toggle);
    document.removeEventListener("keydown", this.onKey);
    this.button.hidden = true;
    this.panel.hidden = true;
  }

  arrived(event) {
    if (this.events.some((e) => e.id === event.id)) return;
    this.events = [event, ...this.events].slice(0, KEEP);
    if (this.panel.hidden) this.unseen += 1;
    this.render();
  }

  async open() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.unseen = 0;
    localStorage.setItem(SEEN, new Date().toISOString());
    if (!this.live) {
      const data = await gql(`{ events(first: 20) { nodes { ${FIELDS} } } }`);
      this.events = data.events.nodes;
    }
    this.render();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
  }

  render() {
    $("activity-count").textContent = String(this.unseen);
    $("activity-count").classList.toggle("zero", this.unseen === 0);
    fill($("activity-list"), this.events.length
      ? this.events.map((e) => h("li", { className: `priority-${e.priority.toLowerCase()}` },
          h("span", { className: "title" }, e.title),
          h("span", { className: "meta" }, `${e.type} · ${e.priority} · `,
            h("time", { datetime: e.createdAt }, when(e.createdAt)))))
      : h("li", { className: "muted" }, "No events yet."));
  }
}
