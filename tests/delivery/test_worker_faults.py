"""The worker when something goes wrong inside it: an outcome that cannot be stored holds
up no other delivery, a failure inside an attempt still releases its claim and retries it,
a stop cuts nothing short for good, a stale claim adds no attempt, and a channel muted or
disabled while its deliveries wait is not sent to."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete, text, update

from tests.delivery.test_delivery import deliveries, emit, save
from tests.peers import HttpReceiver, Reply
from tests.support import PG_URL, Api, eventually
from tocsin.storage.claims import AttemptOutcome, claim_due_deliveries, record_outcomes
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow, DeliveryRow, EventRow
from tocsin.storage.types import utcnow
from tocsin.worker import Worker

MUTE = """mutation($id: ID!, $until: DateTime) {
  muteChannel(id: $id, until: $until) { channel { mutedUntil } errors { code } } }"""
SAVE_WEBHOOK = """mutation($i: WebhookChannelInput!) {
  saveWebhookChannel(input: $i) { channel { id enabled } errors { code message } } }"""


def worker_of(api: Api) -> Worker:
    worker: Worker = api.services.worker
    return worker


async def delivery_of(api: Api, event_id: str) -> dict[str, Any]:
    [node] = [n for n in await deliveries(api) if n["event"]["id"] == event_id]
    return node


async def until_status(api: Api, delivery_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        [node] = [n for n in await deliveries(api) if n["id"] == delivery_id]
        return node if node["status"] in statuses else None

    node: dict[str, Any] = await eventually(check, timeout=15)
    return node


async def poison_attempts(api: Api, *, channel_id: str, title: str) -> None:
    """A database trigger refusing the attempt rows of one channel's delivery of the events
    titled ``title``: a real per-row failure, of the kind a bug or a constraint causes."""
    # ids from the API and a title of this test, nothing from outside
    victim = (
        "EXISTS (SELECT 1 FROM delivery d JOIN event e ON e.id = d.event_id "  # noqa: S608
        f"WHERE d.id = NEW.delivery_id AND d.channel_id = '{channel_id}' "
        f"AND e.title = '{title}')"
    )
    async with api.services.db.write() as session:
        if PG_URL:
            await session.execute(
                text(
                    "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                    f"IF {victim} THEN RAISE EXCEPTION 'poisoned'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON delivery_attempt "
                    "FOR EACH ROW EXECUTE FUNCTION poison()"
                )
            )
        else:
            await session.execute(
                text(
                    f"CREATE TRIGGER poison BEFORE INSERT ON delivery_attempt WHEN {victim} "
                    "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                )
            )


async def test_a_delivery_deleted_while_sending_holds_up_no_one(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # given a delivery in flight whose event is deleted meanwhile (by hand, by a clean-up)
    receiver.respond("/slow", hang=0.5)
    await save(live, "Webhook", {"url": receiver.url("/slow")})
    gone = (await emit(live, title="deleted meanwhile"))["event"]["id"]
    await receiver.wait_for_requests(1, path="/slow")
    async with live.services.db.write() as session:
        await session.execute(delete(EventRow).where(EventRow.id == gone))  # type: ignore[arg-type]
    # when the next event is emitted once the first attempt has ended
    await asyncio.sleep(0.7)
    kept = (await emit(live, title="next"))["event"]["id"]
    # then it is delivered and recorded as usual
    node = await until_status(live, (await delivery_of(live, kept))["id"], "DELIVERED")
    assert [a["ok"] for a in node["attempts"]] == [True]
    assert [r.json()["title"] for r in receiver.requests_to("/slow")] == [
        "deleted meanwhile",
        "next",
    ]
    assert "the delivery loop failed" not in caplog.text


async def test_an_outcome_that_cannot_be_stored_is_retried_on_its_own(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tocsin.worker")
    # given two channels, and a database that refuses the attempt rows of one delivery
    receiver.respond("/poisoned", hang=0.3)
    receiver.respond("/fine", hang=0.3)
    poisoned = await save(live, "Webhook", {"url": receiver.url("/poisoned"), "maxRetries": 1})
    await save(live, "Webhook", {"url": receiver.url("/fine")})
    await poison_attempts(live, channel_id=poisoned, title="first")
    # when events are sent to both, the refused one among them
    first = (await emit(live, title="first"))["event"]["id"]
    later = [(await emit(live, title=f"later {n}"))["event"]["id"] for n in range(3)]
    [victim] = [n for n in await deliveries(live, channelId=poisoned) if n["event"]["id"] == first]

    # then every other delivery is delivered and recorded
    async def others_delivered() -> list[dict[str, Any]] | None:
        nodes = [n for n in await deliveries(live) if n["id"] != victim["id"]]
        return nodes if len(nodes) == 7 and all(n["status"] == "DELIVERED" for n in nodes) else None

    others = await eventually(others_delivered, timeout=15)
    assert {n["event"]["id"] for n in others} == {first, *later}
    # and the one whose attempts cannot be stored is retried on its own, then given up on
    node = await until_status(live, victim["id"], "FAILED")
    assert node["attemptCount"] == 2 and node["attempts"] == []
    assert node["lastError"].startswith("attempt 2 could not be recorded"), node["lastError"]
    titles = [r.json()["title"] for r in receiver.requests_to("/poisoned")]
    assert titles.count("first") == 2
    # each failure logged once, with where it happened; the loop itself never failed
    about = [r for r in caplog.records if victim["id"] in r.getMessage()]
    assert len(about) == 2, [r.getMessage() for r in about]
    assert "could not be recorded" in about[0].getMessage()
    assert "the delivery loop failed" not in caplog.text


async def test_a_failure_inside_an_attempt_releases_its_claim_and_retries(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="tocsin.worker")
    # given a bug in the worker that breaks the first attempt (its message carries data)
    import tocsin.worker_attempt

    real = tocsin.worker_attempt.Message
    calls: list[str] = []

    def broken_once(**fields: Any) -> Any:
        calls.append(fields["delivery_id"])
        if len(calls) == 1:
            raise RuntimeError(f"cannot render {fields['title']}")
        return real(**fields)

    monkeypatch.setattr(tocsin.worker_attempt, "Message", broken_once)
    await save(live, "Webhook", {"url": receiver.url("/hook")})
    # when an event is emitted
    event_id = (await emit(live, title="title-with-data"))["event"]["id"]
    # then the failure is a failed attempt with a retry, and the retry delivers
    node = await until_status(live, (await delivery_of(live, event_id))["id"], "DELIVERED")
    assert [(a["ok"], a["error"]) for a in node["attempts"]] == [
        (False, "internal error (RuntimeError)"),
        (True, None),
    ]
    assert len(receiver.requests_to("/hook")) == 1
    assert worker_of(live)._held == {}
    # and it was logged with where it happened, but not with what the message said
    [record] = [r for r in caplog.records if node["id"] in r.getMessage()]
    assert "RuntimeError" in record.getMessage() and "worker_attempt.py" in record.getMessage()
    assert "title-with-data" not in caplog.text


async def test_a_failure_in_the_worker_after_a_send_is_a_failed_attempt_with_a_retry(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="tocsin.worker")
    # given a bug in the worker that breaks deciding the first outcome, after the send
    import tocsin.worker

    real = tocsin.worker.attempt_outcome
    calls: list[int] = []

    def broken_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cannot decide")
        return real(*args, **kwargs)

    monkeypatch.setattr(tocsin.worker, "attempt_outcome", broken_once)
    await save(live, "Webhook", {"url": receiver.url("/hook")})
    # when an event is emitted
    event_id = (await emit(live, title="title-with-data"))["event"]["id"]
    # then the failure is a failed attempt with a retry (at least once: sent again)
    node = await until_status(live, (await delivery_of(live, event_id))["id"], "DELIVERED")
    assert [(a["ok"], a["error"]) for a in node["attempts"]] == [
        (False, "internal error (RuntimeError)"),
        (True, None),
    ]
    assert len(receiver.requests_to("/hook")) == 2
    assert worker_of(live)._held == {}
    # and it was logged as the worker's failure, with where it happened
    [record] = [r for r in caplog.records if node["id"] in r.getMessage()]
    assert "the worker failed (RuntimeError)" in record.getMessage()
    assert "worker.py" in record.getMessage()
    assert "title-with-data" not in caplog.text


async def test_secrets_that_cannot_be_decrypted_fail_attempts_with_a_logged_cause(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tocsin.worker")
    # given a channel whose stored secrets were encrypted with a key Tocsin does not have
    secret = "whsec_" + "c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw=="
    channel_id = await save(
        live,
        "Webhook",
        {"url": receiver.url("/hook"), "signingSecret": secret, "maxRetries": 1},
    )
    foreign = SecretBox([Fernet.generate_key()]).encrypt({"signing_secret": secret})
    async with live.services.db.write() as session:
        await session.execute(
            update(ChannelRow)
            .where(ChannelRow.id == channel_id)  # type: ignore[arg-type]
            .values(secrets_ciphertext=foreign)
        )
    # when an event is emitted
    event_id = (await emit(live))["event"]["id"]
    # then each attempt fails as an internal error, the retries run out, nothing is sent
    node = await until_status(live, (await delivery_of(live, event_id))["id"], "FAILED")
    assert [a["error"] for a in node["attempts"]] == ["internal error (ConfigurationError)"] * 2
    assert receiver.requests_to("/hook") == []
    assert worker_of(live)._held == {}
    # and each failure is logged with where it happened, and no secret
    about = [r.getMessage() for r in caplog.records if node["id"] in r.getMessage()]
    assert len(about) == 2 and all("secretbox.py" in m for m in about), about
    assert secret not in caplog.text


async def test_stop_hands_back_cut_short_sends_and_start_sends_them(
    live: Api, receiver: HttpReceiver
) -> None:
    # given sends that hang past the half second this stop() grants them
    receiver.respond("/slow", hang=30)
    await save(live, "Webhook", {"url": receiver.url("/slow")})
    events = {(await emit(live, title=f"cut short {n}"))["event"]["id"] for n in range(3)}
    await receiver.wait_for_requests(3, path="/slow")
    # when the worker stops
    worker = worker_of(live)
    await worker.stop(grace=0.5)
    # then nothing is left SENDING or held: the cut-short sends are handed back
    assert {n["status"] for n in await deliveries(live)} == {"PENDING"}
    assert worker._held == {}
    # and when it starts again they are sent (long before any lease would run out)
    receiver.respond("/slow", 200)
    await worker.start()

    async def delivered() -> bool:
        return {n["status"] for n in await deliveries(live)} == {"DELIVERED"}

    await eventually(delivered, timeout=10)
    again = {r.json()["event_id"] for r in receiver.requests_to("/slow")[3:]}
    assert again == events


async def test_a_stale_claim_adds_no_attempt(live: Api, receiver: HttpReceiver) -> None:
    db = live.services.db
    await worker_of(live).stop()  # claims are made by hand here
    await save(live, "Webhook", {"url": receiver.url("/x")})
    event_id = (await emit(live))["event"]["id"]
    lease = timedelta(seconds=30)

    def outcome(claim_token: str, delivery_id: str, ok: bool) -> AttemptOutcome:
        now = utcnow()
        return AttemptOutcome(
            delivery_id=delivery_id,
            claim_token=claim_token,
            number=1,
            started_at=now,
            duration_ms=1.0,
            ok=ok,
            status_code=200 if ok else 500,
            error=None if ok else "HTTP 500",
            new_status="DELIVERED" if ok else "FAILED",
            next_attempt_at=None,
            finished_at=now,
        )

    # given a claim whose lease ran out, and another worker's claim of the same delivery
    async with db.write() as session:
        [stale] = await claim_due_deliveries(
            session, now=utcnow(), lease=lease, limit=10, room_per_channel=lambda _: 10
        )
        await session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == stale.delivery.id)  # type: ignore[arg-type]
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    async with db.write() as session:
        [current] = await claim_due_deliveries(
            session, now=utcnow(), lease=lease, limit=10, room_per_channel=lambda _: 10
        )
    # when both report their attempt
    async with db.write() as session:
        await record_outcomes(session, [outcome(stale.claim_token, stale.delivery.id, False)])
    async with db.write() as session:
        await record_outcomes(session, [outcome(current.claim_token, current.delivery.id, True)])
    # then the delivery log holds the current holder's attempt only
    node = await delivery_of(live, event_id)
    assert node["status"] == "DELIVERED"
    assert [(a["number"], a["ok"]) for a in node["attempts"]] == [(1, True)]


def answer_503_then_hang(receiver: HttpReceiver, path: str) -> None:
    """503 (again in 1 s), then 503s that each take a second to come: whatever is done
    while the second request hangs is done before any third attempt is claimed."""
    later = Reply(status=503, retry_after=1, hang=1.0)
    receiver.respond_in_turn(path, Reply(status=503, retry_after=1), later)


async def test_muting_a_channel_stops_its_queued_retries(live: Api, receiver: HttpReceiver) -> None:
    # given a delivery retrying against a receiver that answers 503
    answer_503_then_hang(receiver, "/down")
    channel_id = await save(live, "Webhook", {"url": receiver.url("/down"), "maxRetries": 10})
    event_id = (await emit(live))["event"]["id"]
    await receiver.wait_for_requests(2, path="/down", timeout=10)
    # when the channel is muted through the API
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    result = await live.ok(MUTE, {"id": channel_id, "until": until.isoformat()})
    assert result["muteChannel"]["errors"] == []
    # then the delivery is SUPPRESSED, with the reason, and nothing more is sent
    node = await until_status(live, (await delivery_of(live, event_id))["id"], "SUPPRESSED")
    assert node["lastError"] == f"channel is muted until {until:%Y-%m-%dT%H:%M:%S}Z"
    await asyncio.sleep(0.5)
    assert len(receiver.requests_to("/down")) == 2
    assert (await delivery_of(live, event_id))["status"] == "SUPPRESSED"


async def test_disabling_a_channel_stops_its_queued_retries(
    live: Api, receiver: HttpReceiver
) -> None:
    answer_503_then_hang(receiver, "/down")
    channel_id = await save(live, "Webhook", {"url": receiver.url("/down"), "maxRetries": 10})
    event_id = (await emit(live))["event"]["id"]
    await receiver.wait_for_requests(2, path="/down", timeout=10)
    result = await live.ok(SAVE_WEBHOOK, {"i": {"id": channel_id, "enabled": False}})
    assert result["saveWebhookChannel"]["errors"] == [], result
    node = await until_status(live, (await delivery_of(live, event_id))["id"], "SUPPRESSED")
    assert node["lastError"] == "channel is disabled"
    assert len(receiver.requests_to("/down")) == 2
