"""Two API processes on one PostgreSQL database emitting twins at once: the dedup key's
check and the insert are one decision, so exactly one of the twins is sent.

The test holds the dedup key's lock (from a connection of its own) until both writers
wait for it, then lets them go; without the lock both read "not sent yet" and both send.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.pg_gate import gate
from tests.support import PG_URL
from tocsin.settings import Settings
from tocsin.storage.database import Database
from tocsin.storage.enums import RouteOutcome
from tocsin.storage.ingest import Decision, NewEvent, WrittenEvent, dedup_lock_key, write_events
from tocsin.storage.types import utcnow

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="SQLite admits one writer at a time; writers meet on PostgreSQL only"
)


def _twin() -> NewEvent:
    return NewEvent(
        type="refresh_failed",
        title="dbt build failed",
        detail=None,
        metadata={},
        priority="HIGH",
        dedup_key="nightly-build",
        idempotency_key=None,
        source="test",
        occurred_at=utcnow(),
    )


async def test_twins_from_two_processes_at_once_are_sent_once(settings: Settings) -> None:
    # given two writers (as two API processes would be), each with its own connections
    first_db, second_db = Database.from_settings(settings), Database.from_settings(settings)

    async def emit(db: Database) -> WrittenEvent:
        async with db.write() as session:
            (written,) = await write_events(
                session,
                [_twin()],
                now=utcnow(),
                matches=lambda *_: Decision(RouteOutcome.SKIPPED, ""),
            )
        return written

    assert settings.database_url is not None
    lock = "SELECT pg_advisory_xact_lock($1)"
    try:
        # when both emit the same type and dedup key at once
        async with gate(
            settings.database_url, lock, dedup_lock_key("refresh_failed", "nightly-build")
        ) as gate_:
            first = asyncio.create_task(emit(first_db))
            await gate_.until_waiting(1, timeout=10)
            second = asyncio.create_task(emit(second_db))
            await gate_.until_waiting(2, timeout=10)
        results = [await first, await second]
    finally:
        await first_db.dispose()
        await second_db.dispose()
    # then one is sent and its twin recorded as deduplicated
    assert sorted(r.deduplicated for r in results) == [False, True]
