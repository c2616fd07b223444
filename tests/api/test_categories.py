"""Issue 9: channels route whole categories (acceptance 3), eventCategories is validated
against the catalog, and eventTypes(category, search) filters the catalog."""

from __future__ import annotations

import pytest

from tests.api.routing_support import SAVE_WEBHOOK, deliveries, emit, save_webhook
from tests.peers import HttpReceiver
from tests.support import Api

EVENT_TYPES = """query($category: String, $search: String) {
  eventTypes(category: $category, search: $search) { name category } }"""
CHANNEL = "query($id: ID!) { channel(id: $id) { eventTypes eventCategories } }"


async def test_an_assistant_channel_gets_agent_failed_and_proposal_ready_only(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a webhook channel of the category assistant
    await save_webhook(live, "assistant", url=receiver.url("/hook"), eventCategories=["assistant"])
    # when a pipeline event and two assistant events are emitted
    refresh = await emit(live, type="refresh_failed", title="dbt build failed")
    agent = await emit(live, type="agent_failed", title="assistant task failed")
    proposal = await emit(live, type="proposal_ready", title="proposal 7 is ready")
    # then the receiver gets the two assistant events
    requests = await receiver.wait_for_requests(2, path="/hook", timeout=10)
    assert sorted(r.json()["event_type"] for r in requests) == ["agent_failed", "proposal_ready"]
    # and refresh_failed has no delivery at all (so it can never be sent), the others one each
    by_event = [n["event"]["id"] for n in await deliveries(live)]
    assert sorted(by_event) == sorted([agent["event"]["id"], proposal["event"]["id"]])
    assert refresh["event"]["id"] not in by_event


async def test_event_categories_are_stored_sorted_and_cleared_with_null(api: Api) -> None:
    channel_id = await save_webhook(api, "hook", eventCategories=["pipeline", "assistant"])
    read = (await api.ok(CHANNEL, {"id": channel_id}))["channel"]
    assert read == {"eventTypes": None, "eventCategories": ["assistant", "pipeline"]}
    await save_webhook(api, "hook", id=channel_id, eventCategories=None)
    read = (await api.ok(CHANNEL, {"id": channel_id}))["channel"]
    assert read == {"eventTypes": None, "eventCategories": None}


async def test_an_unknown_category_is_a_user_error_and_nothing_is_saved(api: Api) -> None:
    data = {"name": "hook", "url": "http://127.0.0.1:9/", "eventCategories": ["deploy", "billing"]}
    result = (await api.ok(SAVE_WEBHOOK, {"input": data}))["saveWebhookChannel"]
    assert result["channel"] is None
    assert result["errors"] == [
        {
            "field": ["eventCategories", "1"],
            "code": "UNKNOWN_CATEGORY",
            "message": "No event type is in the category 'billing'; the categories are "
            "assistant, data, deploy, pipeline, system.",
        }
    ]
    assert (await api.ok("{ channels { id } }"))["channels"] == []


async def test_a_registered_types_category_can_be_routed(api: Api) -> None:
    registered = await api.ok(
        'mutation { registerEventType(input: {name: "invoice_failed", category: "billing"}) '
        "{ name category } }"
    )
    assert registered["registerEventType"] == {"name": "invoice_failed", "category": "billing"}
    channel_id = await save_webhook(api, "billing", eventCategories=["billing"])
    read = (await api.ok(CHANNEL, {"id": channel_id}))["channel"]
    assert read["eventCategories"] == ["billing"]


async def names(api: Api, **arguments: str | None) -> list[str]:
    data = await api.ok(EVENT_TYPES, arguments)
    return [t["name"] for t in data["eventTypes"]]


async def test_event_types_filter_by_category_and_search(api: Api) -> None:
    assert len(await names(api)) == 7
    assert await names(api, category="assistant") == ["agent_failed", "proposal_ready"]
    # search: case-insensitive, in the name (proposal_ready) or the description
    # ("Validation of a proposal fails." is validation_failed's)
    assert await names(api, search="PROPOSAL") == ["proposal_ready", "validation_failed"]
    assert await names(api, category="pipeline", search="proposal") == ["validation_failed"]
    assert await names(api, search="_fail") == [
        "agent_failed",
        "refresh_failed",
        "validation_failed",
    ]
    assert await names(api, search="%") == []
    assert await names(api, category="billing") == []


KINDS = ("Slack", "Webhook", "Email", "Discord", "Telegram", "Teams")


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_saves_and_shows_event_categories(api: Api, kind: str) -> None:
    saved = await api.ok(
        f"mutation($i: {kind}ChannelInput!) {{ s: save{kind}Channel(input: $i) "
        "{ channel { id eventCategories } errors { code } } }",
        {"i": {"name": kind, "eventCategories": ["deploy"]}},
    )
    assert saved["s"]["errors"] == []
    assert saved["s"]["channel"]["eventCategories"] == ["deploy"]
    listed = await api.ok("{ channels { name eventCategories } }")
    assert listed["channels"] == [{"name": kind, "eventCategories": ["deploy"]}]
