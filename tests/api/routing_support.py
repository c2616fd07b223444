"""Helpers of the routing tests: channels saved, events emitted, rows read over GraphQL."""

from __future__ import annotations

from typing import Any

from tests.support import Api

SAVE_WEBHOOK = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
  channel { id name eventTypes eventCategories mutedUntil } errors { field code message } } }"""
EMIT = """mutation($input: EmitEventInput!) { emitEvent(input: $input) {
  event { id type } deduplicated errors { field code message } } }"""
DELIVERIES = """query($filter: DeliveryFilter) { deliveries(first: 100, filter: $filter) {
  totalCount nodes { status reason channel { name } event { id type } } } }"""
COUNTS = """{ events(first: 1) { totalCount } deliveries(first: 1) { totalCount }
  notificationStatus { pendingDeliveries failedDeliveries } }"""
MUTE = """mutation($id: ID!, $until: DateTime) { muteChannel(id: $id, until: $until) {
  channel { id mutedUntil } errors { code } } }"""
NOWHERE = "http://127.0.0.1:9/hook"


async def save_webhook(api: Api, name: str, **fields: Any) -> str:
    """A webhook channel (to ``NOWHERE`` unless ``url`` is given); its id."""
    data = {"name": name, "url": NOWHERE, **fields}
    result = (await api.ok(SAVE_WEBHOOK, {"input": data}))["saveWebhookChannel"]
    assert result["errors"] == [], result
    channel_id: str = result["channel"]["id"]
    return channel_id


async def emit(api: Api, **fields: Any) -> dict[str, Any]:
    data = {"type": "proposal_ready", "title": "proposal 7 is ready", **fields}
    result: dict[str, Any] = (await api.ok(EMIT, {"input": data}))["emitEvent"]
    assert result["errors"] == [], result
    return result


async def deliveries(api: Api, **filter: Any) -> list[dict[str, Any]]:
    data = await api.ok(DELIVERIES, {"filter": filter or None})
    nodes: list[dict[str, Any]] = data["deliveries"]["nodes"]
    return nodes


async def mute(api: Api, channel_id: str, until: str | None) -> dict[str, Any]:
    result: dict[str, Any] = (await api.ok(MUTE, {"id": channel_id, "until": until}))["muteChannel"]
    assert result["errors"] == [], result
    return result
