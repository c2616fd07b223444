"""Whose turn it is to run a periodic job: one process of the whole cluster per interval.

On PostgreSQL a session advisory lock (``pg_try_advisory_lock``) on a connection of its
own is held while the job runs, so no two processes run it at once; the job's last run is
kept in the ``meta`` table, so the next process to get the lock within the interval skips
it. A process that dies mid-job drops its connection, and with it the lock. On SQLite
only the holder of the outbox lock runs periodic work (``tocsin.periodic``), so there is
no one to race with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import text

from tocsin.storage.database import Database
from tocsin.storage.migrate import lock_key
from tocsin.storage.tables import MetaRow

__all__ = ["cluster_turn", "last_run_key"]


def last_run_key(job: str) -> str:
    return f"periodic.{job}.last_run"[:64]


@asynccontextmanager
async def cluster_turn(
    db: Database, job: str, *, every: timedelta, now: datetime
) -> AsyncIterator[bool]:
    """True inside the block when this process runs ``job`` now: nobody else is running it
    and nobody ran it within ``every``; its run is recorded when the block ends without
    an error."""
    if db.is_sqlite:
        async with _recorded_turn(db, job, every=every, now=now) as mine:
            yield mine
        return
    async with db.engine.connect() as connection:
        key = {"key": lock_key(f"tocsin.periodic.{job}")}
        got = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key)
        await connection.commit()
        if not got:
            yield False
            return
        try:
            async with _recorded_turn(db, job, every=every, now=now) as mine:
                yield mine
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            await connection.commit()


@asynccontextmanager
async def _recorded_turn(
    db: Database, job: str, *, every: timedelta, now: datetime
) -> AsyncIterator[bool]:
    async with db.read() as session:
        row = await session.get(MetaRow, last_run_key(job))
    if row is not None and now - datetime.fromisoformat(row.value) < every:
        yield False
        return
    yield True
    async with db.write() as session:
        await session.merge(MetaRow(key=last_run_key(job), value=now.isoformat()))
