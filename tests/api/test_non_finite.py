"""Acceptance: numbers JSON cannot carry (``NaN``, ``Infinity``, ``1e400``) never get in.

A request body with NaN or Infinity is not JSON (400); a non-finite number in metadata, a
metadata match or headers — inline or through variables — is a UserError naming where;
nothing non-finite can be stored or sent; a row stored that way earlier lists with null."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from tests.peers import HttpReceiver
from tests.support import LOOPBACK, Api
from tocsin.channels.base import Destination, Message, SendContext
from tocsin.channels.http import build_http_client
from tocsin.channels.rendering import format_value
from tocsin.channels.webhook import WebhookSender
from tocsin.storage.tables import EventRow

EMIT = """mutation($input: EmitEventInput!) { emitEvent(input: $input) {
  event { id metadata } deduplicated errors { field code message } } }"""
EMIT_MANY = """mutation($inputs: [EmitEventInput!]!) { emitEvents(inputs: $inputs) {
  events { id metadata } errors { field code message } } }"""
EVENTS = "{ events(first: 10) { totalCount nodes { id metadata } } }"
SAVE_WEBHOOK = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
  channel { id } errors { field code message } } }"""


def raw_post(api: Api, body: str) -> Any:
    return api.client.post(
        "/graphql",
        content=body.encode(),
        headers={"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json"},
    )


def body_with(query: str, variables: dict[str, Any]) -> str:
    """A request body with each infinite float written as 1e400: valid JSON text that
    every JSON reader turns back into infinity."""
    return json.dumps({"query": query, "variables": variables}).replace("Infinity", "1e400")


def emit_body(metadata_json: str) -> str:
    """An emitEvent request whose variables carry ``metadata_json`` exactly as written."""
    query = EMIT.replace("\n", " ").replace('"', '\\"')
    return (
        f'{{"query": "{query}", "variables": {{"input": '
        f'{{"type": "test", "title": "numbers", "metadata": {metadata_json}}}}}}}'
    )


async def stored_events(api: Api) -> int:
    count: int = (await api.ok(EVENTS))["events"]["totalCount"]
    return count


# -- the request body --------------------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_a_body_with_nan_or_infinity_is_not_json(api: Api, token: str) -> None:
    # given a body that Python's json module reads but that is not JSON
    response = await raw_post(api, emit_body(f'{{"a": {token}}}'))
    # then 400 BAD_REQUEST, and nothing is stored
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await stored_events(api) == 0


# -- emitEvent ---------------------------------------------------------------------------


async def test_non_finite_metadata_in_variables_is_refused(api: Api) -> None:
    # given 1e400 (valid JSON text, but no double holds it) deep in the metadata
    response = await raw_post(api, emit_body('{"run": {"scores": [1, 2, 1e400]}, "z": -1e400}'))
    # then a UserError on metadata that says where, and nothing is stored
    assert response.status_code == 200, response.text
    payload = response.json()["data"]["emitEvent"]
    assert payload["event"] is None
    [error] = payload["errors"]
    assert (error["field"], error["code"]) == (["metadata"], "INVALID_METADATA")
    assert error["message"].startswith(
        "The number at metadata.run.scores[2] is not a finite number"
    )
    assert await stored_events(api) == 0


@pytest.mark.parametrize(
    ("literal", "where"),
    [("{a: 1e400}", "a"), ("{b: [-1e400]}", "b[0]"), ("{c: {d: 2e308}}", "c.d")],
)
async def test_non_finite_metadata_inline_is_refused(api: Api, literal: str, where: str) -> None:
    query = (
        f'mutation {{ emitEvent(input: {{type: "test", title: "inline", metadata: {literal}}}) '
        "{ event { id } errors { field code message } } }"
    )
    payload = (await api.ok(query))["emitEvent"]
    assert payload["event"] is None
    [error] = payload["errors"]
    assert (error["field"], error["code"]) == (["metadata"], "INVALID_METADATA")
    assert where in error["message"]
    assert await stored_events(api) == 0


async def test_emit_events_names_the_input_with_the_non_finite_number(api: Api) -> None:
    inputs = [
        {"type": "test", "title": "fine", "metadata": {"n": 1.5}},
        {"type": "test", "title": "broken", "metadata": {"n": math.inf}},
        {"type": "test", "title": "fine too"},
    ]
    response = await raw_post(api, body_with(EMIT_MANY, {"inputs": inputs}))
    assert response.status_code == 200, response.text
    payload = response.json()["data"]["emitEvents"]
    [error] = payload["errors"]
    assert (error["field"], error["code"]) == (["inputs", "1", "metadata"], "INVALID_METADATA")
    assert "metadata.n " in error["message"]
    assert payload["events"][1] is None
    assert [e["metadata"] for e in payload["events"] if e] == [{"n": 1.5}, {}]


# -- the other JSON inputs ---------------------------------------------------------------


async def test_a_non_finite_metadata_match_is_refused(api: Api) -> None:
    inline = (
        'mutation { saveWebhookChannel(input: {name: "numbers", url: "http://127.0.0.1:9/h", '
        "metadataMatch: {tier: [1, 1e400]}}) { channel { id } errors { field code message } } }"
    )
    payload = (await api.ok(inline))["saveWebhookChannel"]
    assert payload["channel"] is None
    [error] = payload["errors"]
    assert (error["field"], error["code"]) == (["metadataMatch", "tier"], "INVALID_METADATA_MATCH")
    assert (await api.ok("{ channels { id } }"))["channels"] == []


async def test_a_non_finite_header_value_is_refused(api: Api) -> None:
    variables = {
        "input": {"name": "n", "url": "http://127.0.0.1:9/h", "headers": {"X-L": math.inf}}
    }
    response = await raw_post(api, body_with(SAVE_WEBHOOK, variables))
    assert response.status_code == 200, response.text
    payload = response.json()["data"]["saveWebhookChannel"]
    assert payload["channel"] is None
    [error] = payload["errors"]
    assert (error["field"], error["code"]) == (["headers", "X-L"], "INVALID_HEADER_VALUE")
    assert (await api.ok("{ channels { id } }"))["channels"] == []


# -- storage and the wire ----------------------------------------------------------------


async def test_storage_refuses_a_non_finite_number(api: Api) -> None:
    # given a row written past every check, straight through the engine
    row = EventRow(type="test", title="direct", metadata_={"a": math.inf}, priority="INFO")
    with pytest.raises(Exception) as raised:
        async with api.services.db.write() as session:
            session.add(row)
    # then the engine's JSON serializer refused it, and nothing is stored
    assert "Out of range float values are not JSON compliant" in str(raised.value)
    assert await stored_events(api) == 0


async def test_a_row_stored_with_non_finite_numbers_still_lists(api: Api) -> None:
    # given a webhook channel (no worker runs: its delivery stays pending) and an event
    saved = await api.ok(
        SAVE_WEBHOOK, {"input": {"name": "hook", "url": "http://127.0.0.1:9/hook"}}
    )
    assert saved["saveWebhookChannel"]["errors"] == []
    emitted = await api.ok(EMIT, {"input": {"type": "test", "title": "old", "metadata": {}}})
    event_id = emitted["emitEvent"]["event"]["id"]
    # whose metadata was stored, before this fix, with numbers no double holds
    async with api.services.db.write() as session:
        await session.execute(
            text("UPDATE event SET metadata = :m WHERE id = :id"),
            {"m": '{"a": 1e400, "b": [1, -1e400], "c": "ok"}', "id": event_id},
        )
    expected = {"a": None, "b": [1, None], "c": "ok"}
    # then every listing answers, with null in their place
    events = await api.ok(EVENTS)
    assert events["events"]["nodes"] == [{"id": event_id, "metadata": expected}]
    one = await api.ok(f'{{ event(id: "{event_id}") {{ metadata }} }}')
    assert one["event"]["metadata"] == expected
    deliveries = await api.ok("{ deliveries { nodes { status event { metadata } } } }")
    assert [d["event"]["metadata"] for d in deliveries["deliveries"]["nodes"]] == [expected]


async def test_a_non_finite_number_is_never_sent(receiver: HttpReceiver) -> None:
    # given a message whose metadata holds infinity (as an old row could)
    message = Message(
        delivery_id="dlv_1",
        event_id="evt_1",
        event_type="test",
        priority="INFO",
        title="numbers",
        detail=None,
        metadata={"a": math.inf},
        occurred_at=datetime(2026, 6, 12, 9, 15, tzinfo=UTC),
    )
    destination = Destination(
        channel_id="chn_1",
        kind="WEBHOOK",
        name="hook",
        config={},
        secrets={"url": receiver.url("/hook")},
    )
    client = build_http_client(timeout=2.0, allowed_networks=LOOPBACK)
    context = SendContext(
        http=client,
        timeout=2.0,
        message_prefix="[Tocsin]",
        telegram_api_base=receiver.base_url,
        allowed_networks=LOOPBACK,
    )
    try:
        result = await WebhookSender().send(destination, message, context)
    finally:
        await client.aclose()
    # then the attempt fails, permanently, and the receiver got nothing
    assert not result.ok and not result.retryable
    assert result.error and "metadata" in result.error
    assert receiver.requests == []
    # and the text channels' rendering refuses it too
    with pytest.raises(ValueError):
        format_value([math.nan])
