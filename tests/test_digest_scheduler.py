"""The digest scheduler sleeps until the next digest is due, however long that is, and
closes it then: no busy poll, and many wake-ups cost few looks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from tests.storage.test_digests import event
from tocsin import digest_scheduler
from tocsin.digest_scheduler import DigestScheduler
from tocsin.resolvers.routing import route
from tocsin.storage.database import Database, create_engine
from tocsin.storage.ingest import write_events
from tocsin.storage.tables import ChannelRow
from tocsin.storage.types import utcnow

INTERVALS = {"MEDIUM": 2, "LOW": 60, "INFO": 60}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(database_url))
    async with database.write() as session:
        session.add(ChannelRow(kind="WEBHOOK", name="d", mode="DIGEST", secrets_set=["url"]))
    yield database
    await database.dispose()


async def test_it_sleeps_until_the_digest_is_due_and_closes_it_then(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[datetime] = []
    real_next_due = digest_scheduler.next_due

    async def counted(*args: Any, **kwargs: Any) -> datetime | None:
        looks.append(utcnow())
        return await real_next_due(*args, **kwargs)

    monkeypatch.setattr(digest_scheduler, "next_due", counted)
    closed = asyncio.Event()
    scheduler = DigestScheduler(db, INTERVALS, on_closed=closed.set)
    # given a MEDIUM event waiting in its digest, due two seconds from now
    opened = utcnow()
    async with db.write() as session:
        await write_events(session, [event("e")], now=opened, matches=route)
    scheduler.start()
    try:
        # when commits wake the scheduler again and again meanwhile
        for _ in range(20):
            scheduler.wake()
            await asyncio.sleep(0.05)
        # then it closes the digest once it is due, not before
        await asyncio.wait_for(closed.wait(), timeout=5)
        assert (utcnow() - opened).total_seconds() >= INTERVALS["MEDIUM"]
        # having looked a handful of times, not once per wake-up or per poll interval
        assert len(looks) <= 12, looks
    finally:
        await scheduler.stop()
