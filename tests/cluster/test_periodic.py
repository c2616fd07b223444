"""Periodic work once per cluster, and lease recovery beside many workers (issue 12)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.support import PG_URL, Api
from tocsin import metrics
from tocsin.periodic import PeriodicJob, PeriodicRunner, lease_recovery
from tocsin.storage.claims import AttemptOutcome, claim_due_deliveries, record_outcomes
from tocsin.storage.database import Database, create_engine
from tocsin.storage.tables import DeliveryRow
from tocsin.storage.types import utcnow


@pytest.fixture
async def three_processes(database_url: str) -> AsyncIterator[list[Database]]:
    """Three engines on one database, as three processes would have."""
    dbs = [Database(create_engine(database_url)) for _ in range(3)]
    yield dbs
    for db in dbs:
        await db.dispose()


@pytest.mark.skipif(not PG_URL, reason="on SQLite only the outbox lock's holder runs jobs")
async def test_three_processes_run_a_job_once_per_interval(
    three_processes: list[Database],
) -> None:
    # given three processes' runners with the same job, which takes a moment
    runs: list[datetime] = []

    async def job(db: Database, now: datetime) -> None:
        runs.append(now)
        await asyncio.sleep(0.3)

    runners = [
        PeriodicRunner(db, [PeriodicJob("count", 3600, job)], tick=0) for db in three_processes
    ]
    # when all three look at once, and then again
    first = await asyncio.gather(*(r.run_due() for r in runners))
    second = await asyncio.gather(*(r.run_due() for r in runners))
    # then exactly one of them ran it, once
    assert len(runs) == 1
    assert sorted(map(len, first)) == [0, 0, 1]
    assert second == [[], [], []]


@pytest.mark.skipif(not PG_URL, reason="on SQLite only the outbox lock's holder runs jobs")
async def test_a_job_is_run_again_after_its_interval(three_processes: list[Database]) -> None:
    runs: list[datetime] = []

    async def job(db: Database, now: datetime) -> None:
        runs.append(now)

    runners = [
        PeriodicRunner(db, [PeriodicJob("again", 60, job)], tick=0) for db in three_processes
    ]
    now = utcnow()
    await asyncio.gather(*(r.run_due(now) for r in runners))
    await asyncio.gather(*(r.run_due(now + timedelta(seconds=30)) for r in runners))
    await asyncio.gather(*(r.run_due(now + timedelta(seconds=61)) for r in runners))
    assert runs == [now, now + timedelta(seconds=61)]


async def _expired_sending(api: Api, receiver: HttpReceiver) -> str:
    """One delivery left SENDING under a lease that ran out, as a dead worker leaves it."""
    await save(api, "Webhook", {"url": receiver.url("/lease")})
    await emit(api)
    async with api.services.db.write() as session:
        delivery_id = await session.scalar(select(col(DeliveryRow.id)))
        await session.execute(
            update(DeliveryRow).values(
                status="SENDING",
                claim_token="dead",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    assert delivery_id is not None
    return delivery_id


async def test_an_expired_lease_is_claimed_by_exactly_one_of_many_workers(
    api: Api, receiver: HttpReceiver, three_processes: list[Database]
) -> None:
    # given a delivery its dead worker left SENDING
    delivery_id = await _expired_sending(api, receiver)

    async def claim(db: Database) -> list[str]:
        async with db.write() as session:
            claimed = await claim_due_deliveries(
                session,
                now=utcnow(),
                lease=timedelta(seconds=30),
                limit=10,
                room_per_channel=lambda _: 10,
            )
        return [c.claim_token for c in claimed]

    # when three workers claim at once
    tokens = [t for ts in await asyncio.gather(*(claim(db) for db in three_processes)) for t in ts]
    # then one of them has it
    assert len(tokens) == 1
    # and the dead worker's late outcome is not recorded over the new claim
    now = utcnow()
    late = AttemptOutcome(delivery_id, "dead", 1, now, 1.0, True, 200, None, "DELIVERED", None, now)
    async with api.services.db.write() as session:
        await record_outcomes(session, [late])
    async with api.services.db.read() as session:
        row = await session.get(DeliveryRow, delivery_id)
    assert row is not None and (row.status, row.claim_token) == ("SENDING", tokens[0])


async def test_the_sweep_hands_back_expired_leases_only(api: Api, receiver: HttpReceiver) -> None:
    # given a delivery left SENDING by a dead worker, and one a live worker holds
    dead = await _expired_sending(api, receiver)
    await emit(api, title="held by a live worker")
    async with api.services.db.write() as session:
        await session.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.id) != dead)
            .values(
                status="SENDING",
                claim_token="alive",
                lease_expires_at=utcnow() + timedelta(seconds=60),
            )
        )
    before = metrics.LEASE_RECOVERIES._value.get()
    # when the lease-recovery job runs
    await lease_recovery(api.services.db, utcnow())
    # then only the dead one is due again, and the metric counts it
    async with api.services.db.read() as session:
        rows = {r.id: r.status for r in (await session.scalars(select(DeliveryRow))).all()}
    assert rows[dead] == "PENDING"
    assert [s for i, s in rows.items() if i != dead] == ["SENDING"]
    assert metrics.LEASE_RECOVERIES._value.get() - before == 1
