"""Issue 9: digests as rows. A DIGEST channel gets CRITICAL and HIGH at once and its
MEDIUM, LOW and INFO events as one message per period, from its own row in the delivery
log: retried like any other, resuming after the parts that went out, and its events show
which digest carried them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver, LocalCA, RecordedRequest, Reply
from tests.support import Api, eventually, make_settings, start_api
from tocsin.channels.base import Destination, Digest, SendContext
from tocsin.channels.webhook import WebhookSender, digest_payload

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INTERVALS = {"MEDIUM": 2, "LOW": 2, "INFO": 2}

DIGESTS = """{ deliveries(first: 50, filter: {digest: true}) { totalCount nodes {
  id status attemptCount event { id }
  digest { id status priority eventCount partsSent periodStart periodEnd sentAt
           events { id title } delivery { id } } } } }"""
EVENT = """query($id: ID!) { event(id: $id) { deliveries { id status
  digest { id status delivery { id status } } } } }"""
RETRY = "mutation($id: ID!) { retryDelivery(id: $id) { id status } }"


@pytest.fixture
async def live(
    tmp_path: Path, database_url: str, receiver: HttpReceiver, ca: LocalCA
) -> AsyncIterator[Api]:
    """The app and its worker, with digests of two seconds."""
    settings = make_settings(tmp_path / "data", database_url, digest_intervals=INTERVALS)
    async for api in start_api(settings, run_worker=True):
        api.services.send_context = dataclasses.replace(
            api.services.send_context, ssl_context=ca.client_context()
        )
        yield api


async def digest_webhook(api: Api, receiver: HttpReceiver, path: str = "/digest") -> str:
    return await save(
        api,
        "Webhook",
        {
            "url": receiver.url(path),
            "signingSecret": SIGNING,
            "headers": {"X-Team": "data"},
            "mode": "DIGEST",
            "maxRetries": 3,
        },
    )


async def emit_medium(api: Api, count: int, *, pause: float = 0.0) -> list[str]:
    ids = []
    for number in range(count):
        result = await emit(api, type="proposal_ready", title=f"proposal {number}")
        assert result["errors"] == [] and result["event"]["priority"] == "MEDIUM"
        ids.append(result["event"]["id"])
        if pause:
            await asyncio.sleep(pause)
    return ids


async def member_of(api: Api, event_id: str) -> dict[str, Any]:
    """The event's own delivery in its digest (the oldest event also has the digest's)."""
    rows = (await api.ok(EVENT, {"id": event_id}))["event"]["deliveries"]
    [member] = [row for row in rows if row["id"] != (row["digest"]["delivery"] or {}).get("id")]
    return member


def verified(request: RecordedRequest) -> dict[str, Any]:
    """The body of a signed webhook request, once its signature checks out."""
    body: dict[str, Any] = Webhook(SIGNING).verify(request.body, request.headers)
    return body


async def digest_rows(api: Api) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await api.ok(DIGESTS))["deliveries"]["nodes"]
    return nodes


async def test_critical_arrives_at_once_and_three_medium_as_one_signed_digest(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a webhook channel in DIGEST mode
    await digest_webhook(live, receiver)
    # when three MEDIUM events arrive half a second apart, and a CRITICAL one
    medium = await emit_medium(live, 3, pause=0.5)
    critical = (await emit(live, priority="CRITICAL"))["event"]["id"]
    # then the CRITICAL one arrives at once, on its own
    [first] = await receiver.wait_for_requests(1, path="/digest", timeout=5)
    assert verified(first)["event_id"] == critical
    # and the three MEDIUM ones as one digest: the section 7 body, signed, custom headers on
    [_, request] = await receiver.wait_for_requests(2, path="/digest", timeout=10)
    body = verified(request)
    assert body["digest"] is True and body["priority"] == "MEDIUM"
    assert [event["event_id"] for event in body["events"]] == medium
    assert [event["title"] for event in body["events"]] == [f"proposal {n}" for n in range(3)]
    assert set(body) >= {"id", "digest", "period_start", "period_end", "events", "tocsin_version"}
    period = datetime.fromisoformat(body["period_end"]) - datetime.fromisoformat(
        body["period_start"]
    )
    assert timedelta(seconds=INTERVALS["MEDIUM"]) <= period < timedelta(seconds=5)
    assert request.headers["webhook-id"] == body["id"]
    assert request.headers["x-team"] == "data"
    # and the delivery log shows the digest's own delivery and which digest each event was in
    [carrier] = await eventually(lambda: _delivered(live), timeout=5)
    assert carrier["id"] == body["id"] and carrier["event"]["id"] == medium[0]
    digest = carrier["digest"]
    assert digest["status"] == "CLOSED" and digest["eventCount"] == 3
    assert digest["partsSent"] == 1 and digest["sentAt"] is not None
    assert [event["id"] for event in digest["events"]] == medium
    assert digest["delivery"]["id"] == carrier["id"] and body["digest_id"] == digest["id"]
    for event_id in medium:
        member = await member_of(live, event_id)
        assert member["status"] == "DELIVERED"
        assert member["digest"]["id"] == digest["id"]
        assert member["digest"]["delivery"] == {"id": carrier["id"], "status": "DELIVERED"}
    # and the filter tells the digests' deliveries from the others
    others = await live.ok("{ deliveries(filter: {digest: false}) { nodes { id } } }")
    ids = {node["id"] for node in others["deliveries"]["nodes"]}
    assert len(ids) == 4 and carrier["id"] not in ids
    # and nothing else is sent
    await asyncio.sleep(2.5)
    assert len(receiver.requests_to("/digest")) == 2


async def _delivered(api: Api) -> list[dict[str, Any]] | None:
    rows = await digest_rows(api)
    return rows if rows and all(row["status"] == "DELIVERED" for row in rows) else None


async def test_an_open_digest_shows_its_events_and_is_not_sent_before_its_period_ends(
    live: Api, receiver: HttpReceiver
) -> None:
    await digest_webhook(live, receiver)
    [event_id] = await emit_medium(live, 1)
    member = await member_of(live, event_id)
    # then the event waits in an open digest, with no delivery of its own yet
    assert member["status"] == "BATCHED"
    assert member["digest"]["status"] == "OPEN" and member["digest"]["delivery"] is None
    assert await digest_rows(live) == []
    await asyncio.sleep(1.0)
    assert receiver.requests_to("/digest") == []
    # and once the period is over it is sent
    [request] = await receiver.wait_for_requests(1, path="/digest", timeout=5)
    assert [e["event_id"] for e in verified(request)["events"]] == [event_id]


async def test_a_digest_that_fails_is_retried_with_the_same_webhook_id(
    live: Api, receiver: HttpReceiver
) -> None:
    await digest_webhook(live, receiver)
    receiver.respond_in_turn("/digest", Reply(status=503), Reply(status=200))
    medium = await emit_medium(live, 2)
    first, second = await receiver.wait_for_requests(2, path="/digest", timeout=10)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert [e["event_id"] for e in verified(second)["events"]] == medium
    [carrier] = await eventually(lambda: _delivered(live), timeout=5)
    assert carrier["attemptCount"] == 2


async def test_a_failed_digest_fails_its_events_and_retrying_one_sends_the_digest(
    live: Api, receiver: HttpReceiver
) -> None:
    await digest_webhook(live, receiver)
    receiver.respond("/digest", status=400)
    medium = await emit_medium(live, 2)

    async def failed() -> list[dict[str, Any]] | None:
        rows = [await member_of(live, e) for e in medium]
        return rows if all(row["status"] == "FAILED" for row in rows) else None

    # then when the digest's delivery fails, its events show FAILED too
    members = await eventually(failed, timeout=10)
    # and retrying one of them sends the whole digest again
    receiver.respond("/digest", status=200)
    retried = (await live.ok(RETRY, {"id": members[0]["id"]}))["retryDelivery"]
    assert retried["id"] == members[0]["digest"]["delivery"]["id"]
    assert retried["status"] == "PENDING"
    await eventually(lambda: _delivered(live), timeout=10)
    again = [await member_of(live, e) for e in medium]
    assert [row["status"] for row in again] == ["DELIVERED", "DELIVERED"]
    last = receiver.requests_to("/digest")[-1]
    assert [e["event_id"] for e in verified(last)["events"]] == medium


def one_part_per_event(
    self: WebhookSender, destination: Destination, digest: Digest, context: SendContext
) -> list[Any]:
    """A digest split into one message per event, as a kind with tight limits splits it."""
    parts = []
    for message in digest.messages:
        part = dataclasses.replace(digest, messages=[message])
        parts.append(digest_payload(part, sent_at=digest.period_end))
    return parts


async def test_a_retry_resumes_after_the_parts_that_went_out(
    live: Api, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a kind that splits a digest into three parts, and a receiver that takes the
    # first part, then fails the second once
    monkeypatch.setattr(WebhookSender, "render_digest", one_part_per_event)
    await digest_webhook(live, receiver)
    receiver.respond_in_turn("/digest", Reply(status=200), Reply(status=503), Reply(status=200))
    medium = await emit_medium(live, 3)
    # then the retry sends the second part again and the third, never the first twice
    requests = await receiver.wait_for_requests(4, path="/digest", timeout=10)
    sent = [[e["event_id"] for e in verified(r)["events"]] for r in requests]
    assert sent == [[medium[0]], [medium[1]], [medium[1]], [medium[2]]]
    [carrier] = await eventually(lambda: _delivered(live), timeout=5)
    assert carrier["attemptCount"] == 2 and carrier["digest"]["partsSent"] == 3
    await asyncio.sleep(0.5)
    assert len(receiver.requests_to("/digest")) == 4


async def test_a_digest_of_a_deleted_channel_fails_with_its_events(
    live: Api, receiver: HttpReceiver
) -> None:
    channel_id = await digest_webhook(live, receiver)
    medium = await emit_medium(live, 2)
    deleted = await live.ok(
        "mutation($id: ID!) { deleteChannel(id: $id) { deletedId } }", {"id": channel_id}
    )
    assert deleted["deleteChannel"]["deletedId"] == channel_id

    async def failed() -> list[dict[str, Any]] | None:
        rows = [await member_of(live, e) for e in medium]
        return rows if all(row["status"] == "FAILED" for row in rows) else None

    # then at the period's end the digest's delivery fails, and its events with it
    members = await eventually(failed, timeout=10)
    assert members[0]["digest"]["delivery"]["status"] == "FAILED"
    assert receiver.requests_to("/digest") == []
