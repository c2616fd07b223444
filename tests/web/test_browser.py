"""The settings page in a real browser (issue 10, acceptance 1-7): Debian's chromium
driven by Playwright against a real `tocsin serve` and a real receiver on loopback.

One server for the module: the tests share its channels, so each works on its own kind
(Slack in 2, Webhook in 3, a Discord channel made through the API in 4)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.e2e.server import ADMIN_TOKEN, EMIT, TocsinServer, create_token
from tests.peers import HttpReceiver, SmtpServer
from tests.web.conftest import Tab

pytestmark = pytest.mark.timeout(60)

SAVE_DISCORD = """
mutation($input: DiscordChannelInput!) {
  saveDiscordChannel(input: $input) { channel { id } errors { field code message } }
}"""
SAVE_WEBHOOK_RAW = """
mutation($input: WebhookChannelInput!) {
  saveWebhookChannel(input: $input) { channel { id } errors { field code message } }
}"""
# Run by Playwright before the page's own scripts (not subject to the page's CSP).
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""
# Every text the Activity state line shows, however briefly.
WATCH_ACTIVITY_STATE = """
window.__states = [];
new MutationObserver(() => {
  const line = document.getElementById("activity-state");
  if (line && line.textContent !== window.__states.at(-1)) window.__states.push(line.textContent);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
FEATURES = """{
  mutation: __type(name: "Mutation") { fields { name } }
  __schema { subscriptionType { fields { name } } }
}"""


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def schema_has(server: TocsinServer, *, mutation: str = "", subscription: str = "") -> bool:
    data = await server.ok(FEATURES)
    if mutation:
        return mutation in {f["name"] for f in data["mutation"]["fields"]}
    fields = (data["__schema"]["subscriptionType"] or {}).get("fields") or []
    return subscription in {f["name"] for f in fields}


def card(tab: Tab) -> Any:
    return tab.page.get_by_role("region", name="Notifications")


def field_error(tab: Tab, label: str) -> Any:
    """The error shown beside the field labelled ``label`` (its aria-describedby alert)."""
    return (
        card(tab)
        .locator(".field", has=tab.page.get_by_label(label, exact=True))
        .get_by_role("alert")
    )


# -- 2. sign in, Slack, Save, Send Test, reload; a wrong token ------------------------------


async def test_a_slack_url_is_saved_tested_and_never_shown_again(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    page = tab.page
    url = receiver.url("/slack/T000/B000/secret-path-4f2a")
    await tab.sign_in()
    await expect(page.get_by_text("bootstrap (ADMIN)")).to_be_visible()
    await page.get_by_label("Channel", exact=True).select_option(label="Slack")
    await page.get_by_label("Slack Webhook URL").fill(url)
    send_test = page.get_by_role("button", name="Send Test")
    await page.get_by_role("button", name="Save Changes").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await expect(send_test).to_be_enabled()

    await send_test.click()
    line = page.get_by_role("list", name="Test results").get_by_role("listitem")
    await expect(line.filter(has_text="Slack")).to_contain_text("OK")
    await expect(line.filter(has_text="Slack")).to_contain_text(re.compile(r"\(\d+ ms\)"))
    [request] = await receiver.wait_for_requests(1, path="/slack/T000/B000/secret-path-4f2a")
    assert "[Tocsin]" in request.json()["text"]

    await page.reload()
    field = page.get_by_label("Slack Webhook URL")
    await expect(field).to_have_value("")
    await expect(field).to_have_attribute("placeholder", re.compile("saved"))
    await expect(page.get_by_role("button", name="Clear Slack Webhook URL")).to_be_visible()
    html = await page.content()
    assert url not in html and "secret-path-4f2a" not in html
    assert tab.foreign == []


async def test_a_wrong_token_stays_on_sign_in_with_a_message(tab: Tab) -> None:
    await tab.sign_in("tcs_not-a-token-anyone-was-given-000000")
    await expect(tab.page.get_by_role("alert")).to_contain_text("not accepted")
    await expect(tab.page.get_by_label("API token")).to_be_visible()
    await expect(tab.page.get_by_role("region", name="Notifications")).to_be_hidden()
    assert await tab.page.evaluate("sessionStorage.getItem('tocsin.token')") is None


async def test_sign_out_forgets_the_token(tab: Tab) -> None:
    await tab.sign_in()
    await tab.page.get_by_role("button", name="Sign out").click()
    await expect(tab.page.get_by_label("API token")).to_be_visible()
    assert await tab.page.evaluate("sessionStorage.getItem('tocsin.token')") is None


async def test_a_viewer_sees_the_card_read_only_with_the_reason(
    tab: Tab, web_server: TocsinServer
) -> None:
    token = await create_token(web_server, "browser viewer", "VIEWER")
    await tab.sign_in(token)
    page = tab.page
    await expect(page.get_by_text("browser viewer (VIEWER)")).to_be_visible()
    await expect(page.get_by_role("button", name="Save Changes")).to_be_disabled()
    await expect(page.get_by_role("button", name="Send Test")).to_be_disabled()
    await expect(page.get_by_label("Slack Webhook URL")).to_be_disabled()
    await expect(page.get_by_text("read-only").first).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^Activity"))).to_be_hidden()
    log = page.get_by_role("region", name="Delivery log")
    await expect(log).to_contain_text("needs an EDITOR or ADMIN token")
    await expect(log.get_by_role("table")).to_be_hidden()
    await expect(page.get_by_role("switch", name="refresh_failed")).to_be_disabled()


SECTION_6 = {
    "Slack": ["Slack Webhook URL", "Bot Token", "Slack Channel"],
    "Webhook": ["Webhook URL", "Signing Secret"],
    "Email": [
        "Provider",
        "Email To",
        "SMTP Host",
        "SMTP Port",
        "Security",
        "SMTP Username",
        "SMTP Password",
        "From Address",
    ],
    "Discord": ["Discord Webhook URL"],
    "Telegram": ["Bot Token", "Chat ID"],
    "Teams": ["Teams Webhook URL"],
}
ROUTING = ["Event types", "Categories", "Minimum priority", "Mode", "Mute until"]


async def test_each_kind_shows_its_fields_under_the_contracts_labels(tab: Tab) -> None:
    await tab.sign_in()
    page = tab.page
    picker = page.get_by_label("Channel", exact=True)
    await expect(picker).to_be_enabled()
    options = await picker.locator("option").all_inner_texts()
    assert options == list(SECTION_6)
    for kind, labels in SECTION_6.items():
        await picker.select_option(label=kind)
        for label in [*labels, *ROUTING]:
            await expect(card(tab).get_by_label(label, exact=True)).to_be_visible()
    await picker.select_option(label="Email")
    await expect(page.get_by_label("SMTP Port")).to_have_value("587")
    await expect(page.get_by_label("Security")).to_have_value("STARTTLS")
    await expect(page.get_by_role("button", name="Test Connection")).to_be_visible()
    await page.get_by_label("Provider").select_option(label="SendGrid")
    await expect(page.get_by_label("SendGrid API Key")).to_be_visible()
    await expect(page.get_by_label("SMTP Host")).to_be_hidden()
    await expect(page.get_by_role("button", name="Test Connection")).to_be_hidden()


async def test_routing_fields_are_saved_with_the_channel(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Telegram")
    await page.get_by_label("Display name").fill("ops telegram")
    await page.get_by_label("Bot Token").fill("123456:" + "A" * 35)
    await page.get_by_label("Chat ID").fill("-100123")
    await page.get_by_label("Event types").fill("refresh_failed, deploy_succeeded")
    await page.get_by_label("Minimum priority").select_option("HIGH")
    await page.get_by_label("Mode").select_option("DIGEST")
    await page.get_by_label("Mute until").fill("2031-01-02T03:04")
    await page.get_by_role("button", name="Save Changes").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    data = await web_server.ok(
        "{ channels(kind: TELEGRAM) { name eventTypes minPriority mode mutedUntil"
        " ... on TelegramChannel { botTokenSet chatId } } }"
    )
    [channel] = data["channels"]
    assert channel["name"] == "ops telegram" and channel["botTokenSet"] is True
    assert sorted(channel["eventTypes"]) == ["deploy_succeeded", "refresh_failed"]
    assert (channel["minPriority"], channel["mode"], channel["chatId"]) == (
        "HIGH",
        "DIGEST",
        "-100123",
    )
    assert channel["mutedUntil"].startswith("2031-01-0")
    await page.reload()
    await page.get_by_label("Channel", exact=True).select_option(label="Telegram")
    await expect(page.get_by_label("Minimum priority")).to_have_value("HIGH")
    await expect(page.get_by_label("Mode")).to_have_value("DIGEST")
    await expect(page.get_by_label("Event types")).to_have_value("deploy_succeeded, refresh_failed")
    await expect(page.get_by_label("Mute until")).to_have_value("2031-01-02T03:04")
    html = await page.content()
    assert "A" * 35 not in html


async def test_categories_are_saved_and_an_unknown_one_is_refused_beside_the_field(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    data = await web_server.ok('{ __type(name: "Channel") { fields { name } } }')
    if "eventCategories" not in {f["name"] for f in data["__type"]["fields"]}:
        pytest.skip("Channel.eventCategories is not on this branch yet (engineer i9-route)")
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Discord")
    await page.get_by_label("Display name").fill("categories discord")
    await page.get_by_label("Discord Webhook URL").fill(receiver.url("/discord/hook-77aa"))
    await page.get_by_label("Categories").fill("no-such-category")
    await page.get_by_role("button", name="Save Changes").click()
    await expect(field_error(tab, "Categories")).not_to_be_empty()
    await page.get_by_label("Categories").fill("deploy, pipeline")
    await page.get_by_role("button", name="Save Changes").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    categories = card(tab).locator(".field", has=page.get_by_label("Categories", exact=True))
    await expect(categories.locator(".field-error")).to_be_empty()  # the alert is gone
    data = await web_server.ok("{ channels(kind: DISCORD) { name eventCategories } }")
    saved = {c["name"]: c["eventCategories"] for c in data["channels"]}
    assert sorted(saved["categories discord"]) == ["deploy", "pipeline"]


async def test_clear_removes_a_saved_secret(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Teams")
    await page.get_by_label("Teams Webhook URL").fill(receiver.url("/teams/hook-9f1c"))
    await page.get_by_role("button", name="Save Changes").click()
    clear = page.get_by_role("button", name="Clear Teams Webhook URL")
    await expect(clear).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    await clear.click()
    await expect(clear).to_be_hidden()
    await expect(page.get_by_label("Teams Webhook URL")).to_have_attribute("placeholder", "not set")
    data = await web_server.ok(
        "{ channels(kind: TEAMS) { configured ... on TeamsChannel { webhookUrlSet } } }"
    )
    assert data["channels"] == [{"configured": False, "webhookUrlSet": False}]


async def test_a_link_lists_every_channel_when_there_are_several(
    tab: Tab, web_server: TocsinServer
) -> None:
    data = await web_server.ok("{ channels { name } }")
    names = [c["name"] for c in data["channels"]]
    assert len(names) > 1  # the tests above saved several
    await tab.sign_in()
    await tab.page.get_by_role("link", name=f"All channels ({len(names)})").click()
    listing = tab.page.get_by_role("region", name="All channels")
    for name in names:
        await expect(listing.get_by_role("button", name=name, exact=True)).to_be_visible()


async def test_an_admin_switches_an_event_type_off_and_on(
    tab: Tab, web_server: TocsinServer
) -> None:
    await tab.sign_in()
    events = tab.page.get_by_role("region", name="Events")
    switch = events.get_by_role("switch", name="schema_drift")
    await expect(switch).to_be_checked()
    await expect(events.get_by_text("Default priority: MEDIUM").first).to_be_visible()
    await switch.click()
    await expect(switch).not_to_be_checked()
    await expect(switch).to_be_focused()
    data = await web_server.ok("{ eventTypes { name enabled } }")
    assert {"name": "schema_drift", "enabled": False} in data["eventTypes"]
    await switch.click()
    await expect(switch).to_be_checked()


async def test_an_editor_edits_and_watches_but_may_not_switch_event_types(
    tab: Tab, web_server: TocsinServer
) -> None:
    token = await create_token(web_server, "browser editor", "EDITOR")
    await tab.sign_in(token)
    page = tab.page
    await expect(page.get_by_text("browser editor (EDITOR)")).to_be_visible()
    await expect(page.get_by_role("button", name="Save Changes")).to_be_enabled()
    await expect(page.get_by_role("button", name=re.compile("^Activity"))).to_be_visible()
    await expect(page.get_by_role("region", name="Delivery log")).to_be_visible()
    switch = page.get_by_role("switch", name="refresh_failed")
    await expect(switch).to_be_disabled()
    await expect(page.get_by_text("Only an ADMIN token may switch event types")).to_be_visible()


# -- 3. the server's message beside the field; a receiver answering 500 ------------------------


async def test_an_invalid_url_shows_the_servers_message_beside_the_field(
    tab: Tab, web_server: TocsinServer
) -> None:
    bad = "hooks.example.com/no-scheme"
    data = await web_server.ok(SAVE_WEBHOOK_RAW, {"input": {"name": "probe", "url": bad}})
    [expected] = data["saveWebhookChannel"]["errors"]
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Webhook")
    await page.get_by_label("Webhook URL", exact=True).fill(bad)
    await page.get_by_role("button", name="Save Changes").click()
    await expect(field_error(tab, "Webhook URL")).to_have_text(expected["message"])
    await expect(page.get_by_label("Webhook URL", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )


async def test_a_receiver_answering_500_shows_failed_and_the_error(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    receiver.respond("/hook-500", status=500, body="upstream exploded")
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Webhook")
    await page.get_by_label("Display name").fill("failing webhook")
    await page.get_by_label("Webhook URL", exact=True).fill(receiver.url("/hook-500"))
    await page.get_by_role("button", name="Save Changes").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await page.get_by_role("button", name="Send Test").click()
    line = page.get_by_role("list", name="Test results").get_by_role("listitem")
    failing = line.filter(has_text="failing webhook")
    await expect(failing).to_contain_text("Failed:")
    await expect(failing).to_contain_text("500")
    assert receiver.requests_to("/hook-500")


# -- 4. the Delivery log and Retry -------------------------------------------------------------


async def test_a_failed_delivery_is_listed_and_retry_sends_it_again(
    tab: Tab, web_server: TocsinServer, receiver: HttpReceiver
) -> None:
    receiver.respond("/discord-400", status=400, body="bad request")
    data = await web_server.ok(
        SAVE_DISCORD,
        {
            "input": {
                "name": "<img src=x> log discord",
                "webhookUrl": receiver.url("/discord-400"),
                "eventTypes": ["deploy_succeeded"],
            }
        },
    )
    assert data["saveDiscordChannel"]["errors"] == []
    await tab.sign_in()
    emitted = await web_server.ok(
        EMIT, {"input": {"type": "deploy_succeeded", "title": "v42 is live"}}
    )
    assert emitted["emitEvent"]["errors"] == []
    log = tab.page.get_by_role("region", name="Delivery log")
    row = log.get_by_role("row").filter(has_text="log discord").filter(has_text="FAILED")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("deploy_succeeded")
    await expect(row).to_contain_text("400")
    await expect(row).to_contain_text("<img src=x> log discord")  # shown as text, not markup
    assert await tab.page.locator("img").count() == 0
    await receiver.wait_for_requests(1, path="/discord-400")

    receiver.respond("/discord-400", status=204, body="")
    await row.get_by_role("button", name="Retry").click()
    await receiver.wait_for_requests(2, path="/discord-400", timeout=10)
    delivered = log.get_by_role("row").filter(has_text="log discord").filter(has_text="DELIVERED")
    await expect(delivered).to_be_visible()
    await delivered.get_by_role("button", name="Attempts").click()
    await expect(log.locator(".attempts li")).to_have_count(2)


async def test_the_status_filter_narrows_the_log(tab: Tab) -> None:
    await tab.sign_in()
    log = tab.page.get_by_role("region", name="Delivery log")
    await log.get_by_label("Status").select_option("SUPPRESSED")
    await expect(log.get_by_text("No deliveries yet.")).to_be_visible()


# -- 5. Activity, live ---------------------------------------------------------------------


async def test_an_emitted_event_raises_the_activity_count_live(
    tab: Tab, web_server: TocsinServer
) -> None:
    if not await schema_has(web_server, subscription="events"):
        pytest.skip("the `events` subscription is not on this branch yet (engineer i10-api)")
    await tab.sign_in()
    page = tab.page
    bell = page.get_by_role("button", name=re.compile("^Activity"))
    await expect(page.get_by_text("Live.")).to_be_attached()
    before = int(await page.locator("#activity-count").inner_text())
    emitted = await web_server.ok(
        EMIT, {"input": {"type": "proposal_ready", "title": "<b>Proposal 7</b> is ready"}}
    )
    assert emitted["emitEvent"]["errors"] == []
    await expect(bell).to_have_accessible_name(re.compile(rf"^Activity\s+{before + 1}\b"))
    await bell.click()
    panel = page.get_by_role("region", name="Recent events")
    await expect(panel.get_by_text("<b>Proposal 7</b> is ready")).to_be_visible()
    assert await panel.locator("b").count() == 0
    await expect(panel).to_contain_text("proposal_ready")
    await expect(bell).to_have_accessible_name(re.compile(r"^Activity\s+0\b"))


async def test_activity_reconnects_by_itself_when_the_connection_drops(
    tab: Tab, web_server: TocsinServer
) -> None:
    if not await schema_has(web_server, subscription="events"):
        pytest.skip("the `events` subscription is not on this branch yet (engineer i10-api)")
    page = tab.page
    sockets: list[Any] = []

    async def drop_the_first(socket: Any) -> None:
        socket.connect_to_server()  # messages pass through both ways
        sockets.append(socket)
        if len(sockets) == 1:
            await asyncio.sleep(0.3)
            await socket.close(code=1011, reason="test: the server went away")

    await page.route_web_socket(re.compile(r"/graphql$"), drop_the_first)
    await page.add_init_script(WATCH_ACTIVITY_STATE)
    await tab.sign_in()
    for _ in range(100):
        if len(sockets) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(sockets) == 2
    await expect(page.locator("#activity-state")).to_have_text("Live.", timeout=10_000)
    states = await page.evaluate("window.__states")
    assert any("reconnecting" in state for state in states), states
    emitted = await web_server.ok(
        EMIT, {"input": {"type": "agent_failed", "title": "after the reconnect"}}
    )
    assert emitted["emitEvent"]["errors"] == []
    bell = page.get_by_role("button", name=re.compile("^Activity"))
    await expect(bell).to_have_accessible_name(re.compile(r"^Activity\s+[1-9]"))
    await bell.click()
    await expect(page.get_by_role("region", name="Recent events")).to_contain_text(
        "after the reconnect"
    )


# -- 6. Test Connection against aiosmtpd -------------------------------------------------------


async def test_test_connection_reports_ok_auth_and_uses_the_stored_password(
    tab: Tab, web_server: TocsinServer, smtp_server: SmtpServer
) -> None:
    if not await schema_has(web_server, mutation="testSmtpConnection"):
        pytest.skip("testSmtpConnection is not on this branch yet (engineer i10-api)")
    await tab.sign_in()
    page = tab.page
    await page.get_by_label("Channel", exact=True).select_option(label="Email")
    await expect(page.get_by_label("SMTP Port")).to_have_value("587")
    await expect(page.get_by_label("Security")).to_have_value("STARTTLS")
    await page.get_by_label("Email To").fill("ops@example.com")
    await page.get_by_label("SMTP Host").fill("localhost")
    await page.get_by_label("SMTP Port").fill(str(smtp_server.port))
    await page.get_by_label("SMTP Username").fill(smtp_server.username)
    await page.get_by_label("SMTP Password").fill(smtp_server.password)
    await page.get_by_label("From Address").fill("tocsin@example.com")
    result = page.locator("#connection-result")
    await page.get_by_role("button", name="Test Connection").click()
    await expect(result).to_contain_text("OK")

    await page.get_by_label("SMTP Password").fill("not-the-password")
    await page.get_by_role("button", name="Test Connection").click()
    await expect(result).to_contain_text("Failed: AUTH")

    await page.get_by_label("SMTP Password").fill(smtp_server.password)
    await page.get_by_role("button", name="Save Changes").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await expect(page.get_by_label("SMTP Password")).to_have_attribute(
        "placeholder", re.compile("saved")
    )
    # an unsaved edit (the host spelled another way), tested with the stored password
    await page.get_by_label("SMTP Host").fill("127.0.0.1")
    await page.get_by_role("button", name="Test Connection").click()
    await expect(result).to_contain_text("OK")
    assert smtp_server.messages == []


# -- 7. offline, CSP, 375 px, keyboard ---------------------------------------------------------


async def test_graphiql_renders_and_runs_a_query_with_every_other_origin_blocked(
    tab: Tab,
) -> None:
    page = tab.page
    await page.add_init_script(WATCH_CSP)
    await tab.sign_in()  # GraphiQL takes the signed-in token of this tab for its headers
    await expect(card(tab)).to_be_visible()
    response = await page.goto(tab.base_url + "/graphql")
    assert response is not None
    assert "unsafe" not in response.headers["content-security-policy"]
    editor = page.locator(".graphiql-container .graphiql-query-editor .CodeMirror")
    await expect(editor).to_be_visible()
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("{ viewer { role }")
    await page.locator(".graphiql-execute-button").click()
    await expect(page.locator(".graphiql-response")).to_contain_text('"ADMIN"')
    assert tab.foreign == []
    assert any("/static/vendor/graphiql-" in url for url in tab.requested)
    assert await page.evaluate("window.__violations") == []


async def test_the_page_asks_nothing_of_other_origins_and_sends_its_csp(tab: Tab) -> None:
    await tab.page.add_init_script(WATCH_CSP)
    response = await tab.page.goto(tab.base_url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    await tab.sign_in()
    await expect(card(tab)).to_be_visible()
    await expect(tab.page.get_by_role("region", name="Events")).to_contain_text("refresh_failed")
    assert await tab.page.evaluate("window.__violations") == []
    assert tab.foreign == []


async def test_the_page_fits_375_px_without_sideways_scrolling(
    tab: Tab, web_server: TocsinServer
) -> None:
    await tab.page.set_viewport_size({"width": 375, "height": 800})
    await tab.sign_in()
    await expect(card(tab)).to_be_visible()
    await expect(tab.page.get_by_role("region", name="Delivery log")).to_be_visible()
    width = await tab.page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 375


async def test_the_keyboard_reaches_sign_in_with_a_visible_focus(tab: Tab) -> None:
    page = tab.page
    await page.goto(tab.base_url + "/")
    for _ in range(6):
        await page.keyboard.press("Tab")
        name = await page.evaluate("document.activeElement.textContent.trim()")
        if name == "Sign in":
            break
    assert name == "Sign in"
    outline = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline[0] != "none" and outline[1] != "0px", outline
    await page.get_by_label("API token").focus()
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Enter")
    await expect(card(tab)).to_be_visible()
