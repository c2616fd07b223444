// The settings page: sign-in, then the Notifications card, Activity, the Delivery log and
// the event catalog, each shown or disabled by the token's role.

import { Activity } from "./activity.js";
import { NotificationsCard } from "./card.js";
import { Catalog } from "./catalog.js";
import { DeliveryLog } from "./deliveries.js";
import { $ } from "./dom.js";
import { GraphQLFailure, gql, probeFeatures, session } from "./gql.js";

const EDITORS = new Set(["EDITOR", "ADMIN"]);
let running = null;

async function signIn(token) {
  const data = await gql("{ viewer { name role } }", {}, token);
  session.token = token;
  return data.viewer;
}

async function start(viewer) {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("session").hidden = false;
  $("who").textContent = `${viewer.name} (${viewer.role})`;
  const editor = EDITORS.has(viewer.role);
  if (viewer.role === "EMITTER") {
    showRoleNote("An EMITTER token may only emit events: sign in with a VIEWER, EDITOR or ADMIN token to see the settings.");
    for (const id of ["notifications", "delivery-log", "events"]) $(id).hidden = true;
    running = { stop() {} };
    return;
  }
  for (const id of ["notifications", "delivery-log", "events"]) $(id).hidden = false;
  if (!editor) showRoleNote(`Signed in as ${viewer.role}: the settings are read-only.`);
  const features = await probeFeatures();
  const log = editor ? new DeliveryLog() : null;
  const card = new NotificationsCard({ features, role: viewer.role, onChange: () => log && log.refresh() });
  const activity = editor ? new Activity({ live: features.liveEvents }) : null;
  const catalog = new Catalog({ role: viewer.role });
  running = {
    stop() {
      if (log) log.stop();
      if (activity) activity.stop();
    },
  };
  if (!editor) showDeliveriesWhy();
  await Promise.all([card.load(), catalog.load(), activity && activity.start()]);
  if (log) log.start();
}

function showDeliveriesWhy() {
  // the region stays, so that the reason is where the log would be
  for (const id of ["deliveries-toggle", "deliveries-body"]) $(id).hidden = true;
  $("deliveries-why").hidden = false;
  $("deliveries-why").textContent = "Reading deliveries needs an EDITOR or ADMIN token.";
  $("delivery-log").append($("deliveries-why"));
}

function showRoleNote(text) {
  $("role-note").hidden = false;
  $("role-note").textContent = text;
}

function signOut() {
  if (running) running.stop();
  session.token = null;
  window.location.reload();
}

async function onSubmit(event) {
  event.preventDefault();
  const error = $("signin-error");
  error.textContent = "";
  const token = $("token").value.trim();
  if (!token) {
    error.textContent = "Enter an API token.";
    $("token").focus();
    return;
  }
  try {
    const viewer = await signIn(token);
    $("token").value = "";
    await start(viewer);
  } catch (failure) {
    session.token = null;
    error.textContent = failure instanceof GraphQLFailure && failure.code === "UNAUTHENTICATED"
      ? "That API token was not accepted. Check it and try again."
      : `Could not sign in: ${failure.message}`;
    $("token").focus();
  }
}

async function boot() {
  $("signin-form").addEventListener("submit", onSubmit);
  $("sign-out").addEventListener("click", signOut);
  const saved = session.token;
  if (!saved) return;
  try {
    await start(await signIn(saved));
  } catch (failure) {
    session.token = null;
    $("signin").hidden = false;
    $("app").hidden = true;
    $("session").hidden = true;
    $("signin-error").textContent = "Your session ended: sign in again.";
  }
}

boot();
