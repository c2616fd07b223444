"""Issue 9: a SUPPRESSED delivery says why (Delivery.reason), with the sentence
explainRouting gives: a muted channel's rows, and a deduplicated event's, which records one
SUPPRESSED row per channel routing would have sent it to and sends nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.api.routing_support import COUNTS, deliveries, emit, mute, save_webhook
from tests.support import Api
from tocsin.storage.claims import claim_due_deliveries, finish_without_attempt
from tocsin.storage.types import utcnow
from tocsin.worker_state import not_sendable

EVENT_DELIVERIES = """query($id: ID!) { event(id: $id) { deliveries {
  status reason nextAttemptAt channel { name } } } }"""


async def rows_of(api: Api, event_id: str) -> dict[str, tuple[str, str | None]]:
    data = await api.ok(EVENT_DELIVERIES, {"id": event_id})
    return {d["channel"]["name"]: (d["status"], d["reason"]) for d in data["event"]["deliveries"]}


async def test_a_muted_channels_row_says_until_when(api: Api) -> None:
    await save_webhook(api, "open")
    await mute(api, await save_webhook(api, "muted"), "2036-12-04T09:00:00Z")
    event = await emit(api)
    assert await rows_of(api, event["event"]["id"]) == {
        "open": ("PENDING", None),
        "muted": ("SUPPRESSED", "muted until 2036-12-04T09:00Z"),
    }


async def test_a_deduplicated_event_is_suppressed_where_it_would_have_gone(api: Api) -> None:
    # given two channels that take it, one muted and one that does not take it
    await save_webhook(api, "first")
    await save_webhook(api, "second", mode="DIGEST")
    await save_webhook(api, "other type", eventTypes=["refresh_failed"])
    await mute(api, await save_webhook(api, "muted"), "2036-12-04T09:00:00Z")
    first = await emit(api, dedupKey="p-7")
    before = await api.ok(COUNTS)

    # when its twin is emitted within the window
    twin = await emit(api, dedupKey="p-7")

    # then it is recorded, marked deduplicated, and suppressed with the dedup reason
    assert twin["deduplicated"] is True and twin["event"]["id"] != first["event"]["id"]
    rows = await rows_of(api, twin["event"]["id"])
    assert sorted(rows) == ["first", "muted", "second"]
    assert rows["muted"] == ("SUPPRESSED", "muted until 2036-12-04T09:00Z")
    for name in ("first", "second"):
        status, reason = rows[name]
        assert status == "SUPPRESSED"
        assert reason and re.fullmatch(
            r"dedup: same dedupKey sent \d+ s ago \(window 3600 s\)", reason
        )
    # and nothing more is pending or failed: three rows more, all of them SUPPRESSED
    after = await api.ok(COUNTS)
    assert after["notificationStatus"] == before["notificationStatus"]
    assert after["deliveries"]["totalCount"] == before["deliveries"]["totalCount"] + 3
    assert after["events"]["totalCount"] == before["events"]["totalCount"] + 1
    suppressed = await deliveries(api, status="SUPPRESSED")
    assert len(suppressed) == 4  # the first event's muted row, and the twin's three


async def test_a_sent_delivery_has_no_reason(api: Api) -> None:
    await save_webhook(api, "open")
    event = await emit(api, dedupKey="p-9")
    assert await rows_of(api, event["event"]["id"]) == {"open": ("PENDING", None)}


async def test_a_row_the_worker_suppresses_gives_the_workers_reason(api: Api) -> None:
    # given a pending delivery whose channel is disabled before the worker takes it
    channel_id = await save_webhook(api, "hook")
    event = await emit(api)
    await save_webhook(api, "hook", id=channel_id, enabled=False)
    # when the worker claims it and finds it not sendable (as worker.py does)
    async with api.services.db.write() as session:
        [claimed] = await claim_due_deliveries(
            session,
            now=utcnow(),
            lease=timedelta(minutes=1),
            limit=10,
            room_per_channel=lambda _: 10,
        )
        verdict = not_sendable(claimed.channel, utcnow())
        assert verdict is not None
        await finish_without_attempt(
            session,
            claimed.delivery.id,
            claimed.claim_token,
            status=verdict[0].value,
            reason=verdict[1],
        )
    # then the row says why
    assert await rows_of(api, event["event"]["id"]) == {
        "hook": ("SUPPRESSED", "channel is disabled")
    }
