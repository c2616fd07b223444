"""A gate for PostgreSQL concurrency tests: a lock held in a transaction of the test's own,
until every writer under test waits for it; then they all go at once.

    async with gate(url, "SELECT 1 FROM channel WHERE id = $1 FOR UPDATE", channel_id) as gate_:
        first = asyncio.create_task(save(...))
        await gate_.until_waiting(1)          # the first writer waits for the lock
        second = asyncio.create_task(save(...))
        await gate_.until_waiting(2)          # and the second behind it, in that order
    # leaving the block rolls the gate's transaction back: the writers proceed
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class Gate:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def until_waiting(self, count: int, *, timeout: float = 30.0) -> None:
        """Return once ``count`` other sessions of this database wait for a lock."""
        waiting = 0
        for _ in range(int(timeout / 0.02)):
            # pg_stat_activity is a snapshot per transaction unless cleared
            await self._connection.execute("SELECT pg_stat_clear_snapshot()")
            waiting = await self._connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"only {waiting} of {count} sessions reached the gate in {timeout}s")


@asynccontextmanager
async def gate(database_url: str, statement: str, *args: Any) -> AsyncIterator[Gate]:
    """Run ``statement`` in a transaction that is rolled back when the block ends."""
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(dsn)
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(statement, *args)
        yield Gate(connection)
    finally:
        await transaction.rollback()
        await connection.close()
