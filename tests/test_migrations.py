"""The migrations build exactly the schema the models describe, and run both ways."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlmodel import SQLModel

import tocsin.storage.tables  # noqa: F401  (registers the tables)
from tocsin.storage.database import create_engine
from tocsin.storage.migrate import alembic_config


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _downgrade_to_base(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), "base")


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_migrations_match_the_models(database_url: str) -> None:
    # given a database migrated to head (the template every test copies)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            # then autogenerate finds nothing left to migrate
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_migrations_downgrade_and_upgrade_again(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_to_base)
            assert await connection.run_sync(_tables) == set()
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to_head)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            assert await connection.run_sync(_tables) == set(SQLModel.metadata.tables)
    finally:
        await engine.dispose()
