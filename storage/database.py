"""The engine and sessions. Writes go through ``Database.write``.

On SQLite one process has a single writer at a time (an asyncio lock), so
concurrent requests queue in memory instead of failing on the file's write
lock; readers use WAL and never wait for the writer. PostgreSQL needs no lock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tocsin.settings import Settings
from tocsin.storage.sqlite_driver import defer_inserts, one_trip_dbapi

# NaN and Infinity are not JSON: stored, they would break every reader of the row.
_STRICT_JSON = partial(json.dumps, allow_nan=False)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            pool_size=8,
            max_overflow=8,
            # The connection given back last is taken next, so writes (one at a time) keep
            # to one connection: SQLite empties a connection's page cache whenever another
            # connection wrote since its last use (with FIFO, three threads' worth of CPU).
            pool_use_lifo=True,
            connect_args={"timeout": 30},
            json_serializer=_STRICT_JSON,
            # One trip to the connection's thread per statement (storage/sqlite_driver.py).
            **({"module": one_trip_dbapi()} if url.startswith("sqlite+aiosqlite") else {}),
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        hide_parameters=True,
        json_serializer=_STRICT_JSON,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(create_engine(settings.sqlalchemy_url))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self, *, pipelined: bool = False) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        ``pipelined``: on SQLite, the transaction's plain INSERTs travel with its next
        statement or its COMMIT instead of each being a trip to the connection's thread
        (``sqlite_driver.defer_inserts``); an INSERT's IntegrityError is then raised from
        there, the commit included, and the whole transaction is rolled back. Later
        statements of the transaction do see the deferred rows (they are sent first). For
        a writer that handles errors per transaction rather than per statement."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session:
            await session.execute(text("BEGIN IMMEDIATE"))
            if pipelined:
                await defer_inserts(session)
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    async def ping(self) -> bool:
        try:
            async with self.read() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=2)
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
