"""The digest store: events join their channel's one open digest of their priority, whose
period starts at its first event (not on an epoch boundary); a due digest closes into one
delivery carrying its members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from tocsin.resolvers.routing import route
from tocsin.storage.database import Database, create_engine
from tocsin.storage.digests import close_due_digests, next_due
from tocsin.storage.ingest import NewEvent, write_events
from tocsin.storage.tables import ChannelRow, DeliveryRow, DigestRow, EventRow

INTERVALS = {"MEDIUM": 3, "LOW": 10, "INFO": 20}
# 2.5 s past a multiple of 3 s: an epoch-aligned period of 3 s would end 0.5 s later.
T0 = datetime(2026, 12, 3, 9, 0, 2, 500_000, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    async with database.write() as session:
        session.add(
            ChannelRow(
                id="c" * 32,
                kind="WEBHOOK",
                name="digest",
                mode="DIGEST",
                secrets_set=["url"],
            )
        )
    yield database
    await database.dispose()


def event(title: str, priority: str = "MEDIUM") -> NewEvent:
    return NewEvent(
        type="proposal_ready",
        title=title,
        detail=None,
        metadata={},
        priority=priority,
        dedup_key=None,
        idempotency_key=None,
        source="test",
        occurred_at=T0,
    )


async def write(db: Database, at: datetime, *events: NewEvent) -> list[str]:
    async with db.write() as session:
        written = await write_events(session, list(events), now=at, matches=route)
    return [w.event.id for w in written]


async def close(db: Database, at: datetime) -> list[tuple[str, str | None]]:
    async with db.write() as session:
        closed = await close_due_digests(session, now=at, intervals=INTERVALS)
    return [(c.digest_id, c.delivery_id) for c in closed]


async def rows(db: Database, table: type) -> list:  # type: ignore[type-arg]
    async with db.read() as session:
        return list((await session.scalars(select(table))).all())


async def test_events_a_second_apart_are_one_digest_due_one_interval_after_the_first(
    db: Database,
) -> None:
    # given three MEDIUM events a second apart, across an epoch boundary of the interval
    ids = []
    for offset in range(3):
        ids += await write(db, T0 + timedelta(seconds=offset), event(f"e{offset}"))
    # then they wait in one open digest, due one interval after the first event
    [digest] = await rows(db, DigestRow)
    assert (digest.status, digest.event_count, digest.period_start) == ("OPEN", 3, T0)
    async with db.read() as session:
        assert await next_due(session, intervals=INTERVALS) == T0 + timedelta(seconds=3)
    members = await rows(db, DeliveryRow)
    assert {(m.status, m.digest_id, m.next_attempt_at) for m in members} == {
        ("BATCHED", digest.id, None)
    }
    # when the scheduler looks before the period is over, nothing closes
    assert await close(db, T0 + timedelta(seconds=2.9)) == []
    # and at its end the digest closes into one PENDING delivery of its oldest event
    [(digest_id, carrier_id)] = await close(db, T0 + timedelta(seconds=3))
    assert digest_id == digest.id and carrier_id is not None
    [carrier] = [row for row in await rows(db, DeliveryRow) if row.id == carrier_id]
    assert (carrier.status, carrier.event_id, carrier.digest_id) == ("PENDING", ids[0], digest.id)
    [closed] = await rows(db, DigestRow)
    assert (closed.status, closed.delivery_id) == ("CLOSED", carrier_id)
    assert closed.period_end == T0 + timedelta(seconds=3)
    # and closing again closes nothing twice
    assert await close(db, T0 + timedelta(seconds=4)) == []


async def test_the_next_event_after_the_close_opens_the_next_digest(db: Database) -> None:
    await write(db, T0, event("first"))
    [(first, _)] = await close(db, T0 + timedelta(seconds=3))
    await write(db, T0 + timedelta(seconds=3.5), event("second"))
    opened = [d for d in await rows(db, DigestRow) if d.status == "OPEN"]
    assert [(d.event_count, d.period_start) for d in opened] == [(1, T0 + timedelta(seconds=3.5))]
    assert opened[0].id != first


async def test_each_priority_has_its_own_digest_and_interval(db: Database) -> None:
    # given MEDIUM and LOW events in one emit (and a CRITICAL one, sent at once)
    await write(db, T0, event("m"), event("l", "LOW"), event("l2", "LOW"), event("c", "CRITICAL"))
    digests = {d.priority: d for d in await rows(db, DigestRow)}
    assert {p: d.event_count for p, d in digests.items()} == {"MEDIUM": 1, "LOW": 2}
    statuses = sorted(row.status for row in await rows(db, DeliveryRow))
    assert statuses == ["BATCHED", "BATCHED", "BATCHED", "PENDING"]
    # then the MEDIUM digest closes first, the LOW one at its own interval
    assert [d for d, _ in await close(db, T0 + timedelta(seconds=3))] == [digests["MEDIUM"].id]
    async with db.read() as session:
        assert await next_due(session, intervals=INTERVALS) == T0 + timedelta(seconds=10)
    assert [d for d, _ in await close(db, T0 + timedelta(seconds=10))] == [digests["LOW"].id]


async def test_a_digest_whose_events_are_gone_closes_without_a_delivery(db: Database) -> None:
    await write(db, T0, event("deleted"))
    async with db.write() as session:
        await session.execute(delete(EventRow))
    [(_, carrier)] = await close(db, T0 + timedelta(seconds=3))
    assert carrier is None
    assert await rows(db, DeliveryRow) == []
