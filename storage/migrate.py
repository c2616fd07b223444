"""Applies the Alembic migrations; called on every start-up, by every process.

Processes that start together (an API and three workers on one empty PostgreSQL) take
turns: each migrates under a PostgreSQL advisory lock (on SQLite, under the file's write
lock), so the first creates the tables and the others then find them at head.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tocsin.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = "tocsin.migrate"

log = logging.getLogger("tocsin.migrate")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _lock_transaction(connection: AsyncConnection, name: str) -> None:
    """Hold a lock that other processes' start-ups wait for, until this transaction ends."""
    if connection.dialect.name == "postgresql":
        key = {"key": lock_key(name)}
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
    elif connection.dialect.name == "sqlite":
        # A deferred transaction would read the version table from a snapshot that another
        # process's migration then makes stale; IMMEDIATE waits for the writer instead.
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def startup_lock(engine: AsyncEngine, name: str) -> AsyncIterator[None]:
    """Run the block while no other process holds the lock ``name`` (PostgreSQL: a session
    advisory lock, released when the block ends or the process dies); elsewhere a no-op."""
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as connection:
        key = {"key": lock_key(name)}
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            await connection.commit()


def _upgrade(connection: Connection) -> None:
    current = MigrationContext.configure(connection).get_current_revision()
    config = alembic_config(connection)
    head = ScriptDirectory.from_config(config).get_current_head()
    if current == head:
        return
    command.upgrade(config, "head")
    log.info("migrated the database from %s to %s", current or "an empty database", head)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Migrate to the newest revision, in one transaction, one process at a time.

    The first thing each process does with its database: a connection that fails raises
    DatabaseUnavailable (one line), not the driver's traceback."""
    connection = engine.connect()
    try:
        await connection.start()
    except (OSError, SQLAlchemyError) as exc:
        raise DatabaseUnavailable.from_error(exc, password=engine.url.password) from None
    try:
        async with connection.begin():
            await _lock_transaction(connection, MIGRATION_LOCK)
            await connection.run_sync(_upgrade)
    finally:
        await connection.close()
