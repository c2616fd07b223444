"""The worker's claims: a long backlog on one channel does not hide the others, only the
current claim's holder records an outcome, held claims keep their lease, and a clean stop
leaves nothing the receiver already has to be sent again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.support import Api, eventually
from tocsin.storage.claims import (
    AttemptOutcome,
    ClaimedDelivery,
    claim_due_deliveries,
    record_outcomes,
)
from tocsin.storage.database import Database
from tocsin.storage.tables import DeliveryRow
from tocsin.storage.types import utcnow
from tocsin.worker import Worker

EMIT_MANY = """mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) { errors { code } } }"""


async def emit_many(api: Api, count: int, title: str) -> None:
    for start in range(0, count, 500):
        inputs = [{"type": "test", "title": f"{title} {i}"} for i in range(start, start + 500)]
        result = await api.ok(EMIT_MANY, {"i": inputs})
        assert result["emitEvents"]["errors"] == []


async def test_a_long_backlog_on_one_channel_does_not_hide_the_others(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a hanging destination with a backlog longer than any claim looks at
    receiver.respond("/stuck", hang=30)
    await save(live, "Webhook", {"name": "stuck", "url": receiver.url("/stuck")})
    await emit_many(live, 1500, "backlog")
    await receiver.wait_for_requests(8, path="/stuck", timeout=10)
    # when a healthy channel appears and an event is emitted
    await save(live, "Webhook", {"name": "healthy", "url": receiver.url("/healthy")})
    await emit(live, title="for the healthy one")
    # then it is delivered at once, not after the backlog
    [request] = await receiver.wait_for_requests(1, path="/healthy", timeout=5)
    assert request.json()["title"] == "for the healthy one"


async def test_channels_that_stopped_answering_do_not_take_every_claim(
    live: Api, receiver: HttpReceiver
) -> None:
    # given two hanging destinations, each holding as many claims as a channel may
    receiver.respond("/stuck-a", hang=30)
    receiver.respond("/stuck-b", hang=30)
    await save(live, "Webhook", {"name": "stuck a", "url": receiver.url("/stuck-a")})
    await save(live, "Webhook", {"name": "stuck b", "url": receiver.url("/stuck-b")})
    await emit_many(live, 500, "backlog")
    worker: Worker = live.services.worker
    limits = worker._limits
    await receiver.wait_for_requests(2 * limits.per_channel, timeout=10)

    async def both_full() -> bool:
        return len(worker._held) == 2 * (limits.per_channel + limits.prefetch)

    await eventually(both_full)
    # when a healthy channel appears and an event is emitted
    await save(live, "Webhook", {"name": "healthy", "url": receiver.url("/healthy")})
    await emit(live, title="for the healthy one")
    # then it is delivered at once: the stuck ones' claims leave room for it
    [request] = await receiver.wait_for_requests(1, path="/healthy", timeout=5)
    assert request.json()["title"] == "for the healthy one"


async def test_only_the_current_claim_records_the_outcome(
    live: Api, receiver: HttpReceiver
) -> None:
    db = live.services.db
    await live.services.worker.stop()  # claims are made by hand here
    await save(live, "Webhook", {"url": receiver.url("/x")})
    await emit(live)
    lease = timedelta(seconds=30)

    def outcome(delivery_id: str, token: str, status: str) -> AttemptOutcome:
        now = utcnow()
        return AttemptOutcome(
            delivery_id=delivery_id,
            claim_token=token,
            number=1,
            started_at=now,
            duration_ms=1.0,
            ok=status == "DELIVERED",
            status_code=200 if status == "DELIVERED" else 500,
            error=None,
            new_status=status,
            next_attempt_at=None,
            finished_at=now,
        )

    # given a claim whose lease ran out and that another worker then took over
    async with db.write() as session:
        [first] = await claim_due_deliveries(
            session, now=utcnow(), lease=lease, limit=10, room_per_channel=lambda _: 10
        )
        delivery_id = first.delivery.id
        await session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id)  # type: ignore[arg-type]
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    async with db.write() as session:
        [second] = await claim_due_deliveries(
            session, now=utcnow(), lease=lease, limit=10, room_per_channel=lambda _: 10
        )
    assert second.delivery.id == delivery_id and second.claim_token != first.claim_token

    # when the first, stale holder reports, nothing changes
    async with db.write() as session:
        await record_outcomes(session, [outcome(delivery_id, first.claim_token, "FAILED")])
    async with db.read() as session:
        row = await session.get(DeliveryRow, delivery_id)
        assert row is not None and row.status == "SENDING"
    # and the current holder's outcome is the one recorded
    async with db.write() as session:
        await record_outcomes(session, [outcome(delivery_id, second.claim_token, "DELIVERED")])
    async with db.read() as session:
        row = await session.get(DeliveryRow, delivery_id)
        assert row is not None and row.status == "DELIVERED"


async def test_held_claims_keep_their_lease(live: Api, receiver: HttpReceiver) -> None:
    # given deliveries held by the worker, waiting on a slow receiver
    receiver.respond("/slow", hang=30)
    await save(live, "Webhook", {"url": receiver.url("/slow")})
    await emit_many(live, 500, "slow")
    worker: Worker = live.services.worker
    await receiver.wait_for_requests(8, path="/slow", timeout=10)
    # when their leases are about to run out (as after a long wait in the queue)
    held = dict(worker._held)
    limits = worker._limits
    assert len(held) == limits.per_channel + limits.prefetch  # sending, and queued
    nearly = utcnow() + timedelta(seconds=1)
    for delivery_id, (token, _) in held.items():
        worker._held[delivery_id] = (token, nearly)
    worker.wake()

    # then the worker extends them in the database before anyone else may claim them
    async def renewed() -> bool:
        async with live.services.db.read() as session:
            leases = (
                await session.scalars(
                    select(DeliveryRow.lease_expires_at).where(
                        DeliveryRow.id.in_(list(held))  # type: ignore[attr-defined]
                    )
                )
            ).all()
        return all(
            lease is not None and lease > utcnow() + timedelta(seconds=5) for lease in leases
        )

    await eventually(renewed, timeout=5)


async def test_a_clean_stop_leaves_nothing_delivered_to_send_again(
    live: Api, receiver: HttpReceiver
) -> None:
    receiver.respond("/fast", 200)
    await save(live, "Webhook", {"url": receiver.url("/fast")})
    await emit_many(live, 500, "fast")
    await receiver.wait_for_requests(100, path="/fast", timeout=20)
    # when the worker stops while deliveries are under way
    await live.services.worker.stop()
    await asyncio.sleep(0.1)
    # then everything the receiver answered is recorded as DELIVERED, and no delivery is
    # left SENDING (the unsent ones are handed back as PENDING)
    received = {r.headers["webhook-id"] for r in receiver.requests_to("/fast")}
    async with live.services.db.read() as session:
        rows = (await session.execute(select(DeliveryRow.id, DeliveryRow.status))).all()
    statuses = dict(rows)
    assert {statuses[i] for i in received} == {"DELIVERED"}
    assert "SENDING" not in statuses.values()

    # and when the same worker starts again, every event arrives
    worker: Worker = live.services.worker
    await worker.start()
    requests = await receiver.wait_for_requests(500, path="/fast", timeout=20)
    assert len({r.json()["event_id"] for r in requests}) == 500


async def claim_by_hand(db: Database, *, take_over_expired: bool) -> list[ClaimedDelivery]:
    """Up to 10 deliveries claimed for 30 s, as a worker's turn claims them."""
    async with db.write() as session:
        return await claim_due_deliveries(
            session,
            now=utcnow(),
            lease=timedelta(seconds=30),
            limit=10,
            room_per_channel=lambda _: 10,
            take_over_expired=take_over_expired,
        )


async def test_a_claim_reads_the_front_of_the_queue_without_sorting_the_backlog(
    api: Api,
) -> None:
    # given a queue of deliveries on SQLite (PostgreSQL plans by its table statistics)
    db = api.services.db
    if not db.is_sqlite:
        pytest.skip("the plan is SQLite's")
    await save(api, "Webhook", {"url": "https://hooks.example.com/q"})
    await emit_many(api, 500, "queued")
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if sql.lstrip().startswith("SELECT") and "FROM delivery" in sql:
            statements.append((sql, params))

    # when the worker's claim (its usual turn, not looking for expired leases) runs
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        claimed = await claim_by_hand(db, take_over_expired=False)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert len(claimed) == 10
    # then its queue query walks the queue index in order: no sort of every due delivery
    [(sql, params)] = [s for s in statements if "ORDER BY" in s[0]]
    async with db.read() as session:
        connection = await session.connection()
        plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        steps = [row[-1] for row in plan.all()]
    assert not [step for step in steps if "TEMP B-TREE" in step], steps
    assert any("COVERING INDEX ix_delivery_queue" in step for step in steps), steps


async def test_a_claim_takes_over_an_expired_lease_when_it_looks_for_them(api: Api) -> None:
    # given a delivery claimed by a worker that died (its lease ran out)
    db = api.services.db  # no worker runs here: claims are made by hand
    await save(api, "Webhook", {"url": "https://hooks.example.com/e"})
    await emit(api)

    async def claim(look: bool) -> list[str]:
        return [c.delivery.id for c in await claim_by_hand(db, take_over_expired=look)]

    [delivery_id] = await claim(look=True)
    async with db.write() as session:
        await session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id)  # type: ignore[arg-type]
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    # then a turn that only reads the queue leaves it, and the next look takes it over
    assert await claim(look=False) == []
    assert await claim(look=True) == [delivery_id]


async def test_a_backlog_is_recorded_and_claimed_in_few_large_turns(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a worker counting its turns (each one transaction on the single writer)
    worker: Worker = live.services.worker
    turns: list[int] = []
    record_and_claim = worker._record_and_claim

    async def counted(finished: Any, *args: Any) -> Any:
        turns.append(len(finished))
        return await record_and_claim(finished, *args)

    worker._record_and_claim = counted  # type: ignore[method-assign]
    receiver.respond("/many", 200, hang=0.01)  # sends finish one by one, 10 ms each
    await save(live, "Webhook", {"url": receiver.url("/many")})
    # when a backlog of 500 deliveries to one channel is sent
    await emit_many(live, 500, "many")
    await receiver.wait_for_requests(500, path="/many", timeout=30)

    async def all_recorded() -> bool:
        async with live.services.db.read() as session:
            statuses = (await session.scalars(select(DeliveryRow.status))).all()
        return set(statuses) == {"DELIVERED"}

    await eventually(all_recorded, timeout=10)
    # then each turn records many outcomes at once, rather than a turn after every few
    # sends: the statements of a turn cost the same however few rows they carry
    assert sum(turns) == 500
    assert len(turns) <= 25, f"{len(turns)} turns for 500 outcomes"
