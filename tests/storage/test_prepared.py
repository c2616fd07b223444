"""storage/prepared.Prepared: a statement run with many rows on the driver stores exactly
what SQLAlchemy's own execute stores (datetimes, booleans, NULLs, the statement's own
literals), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, bindparam, insert, update

from tests.support import Api
from tocsin.storage.database import Database
from tocsin.storage.prepared import Prepared
from tocsin.storage.types import UTCDateTime

_META = MetaData()
_PROBE = Table(
    "prepared_probe",
    _META,
    Column("id", String(40), primary_key=True),
    Column("at", UTCDateTime(), nullable=True),
    Column("ok", Boolean(), nullable=True),
    Column("count", Integer(), nullable=True),
    Column("note", String(200), nullable=True),
    Column("state", String(20), nullable=True),
)
_ADD = insert(_PROBE).values(
    id=bindparam("p_id"),
    at=bindparam("p_at"),
    ok=bindparam("p_ok"),
    count=bindparam("p_count"),
    note=bindparam("p_note"),
    state="NEW",
)
_MOVE = (
    update(_PROBE)
    .where(_PROBE.c.id == bindparam("p_id"), _PROBE.c.state == "NEW")
    .values(state=bindparam("p_state"), at=bindparam("p_at"), note=None)
)


@pytest.fixture
async def db(api: Api) -> AsyncIterator[Database]:
    database = api.services.db
    async with database.engine.begin() as connection:
        await connection.run_sync(_META.create_all)
    yield database
    async with database.engine.begin() as connection:
        await connection.run_sync(_META.drop_all)


def _rows(prefix: str) -> list[dict[str, Any]]:
    at = datetime(2026, 12, 4, 23, 59, 59, 123456, tzinfo=UTC)
    return [
        {"p_id": f"{prefix}1", "p_at": at, "p_ok": True, "p_count": 3, "p_note": "ünï"},
        # whole seconds: SQLite's text form must still carry the microseconds
        {
            "p_id": f"{prefix}2",
            "p_at": at.replace(microsecond=0),
            "p_ok": False,
            "p_count": 0,
            "p_note": None,
        },
        {"p_id": f"{prefix}3", "p_at": None, "p_ok": None, "p_count": None, "p_note": "'; --"},
        # another zone: stored as the same instant in UTC
        {
            "p_id": f"{prefix}4",
            "p_at": at.astimezone(timezone_plus_5()),
            "p_ok": True,
            "p_count": -1,
            "p_note": "",
        },
    ]


def timezone_plus_5() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=5))


async def _stored(db: Database, prefix: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (the driver's own values, no type processing)."""
    async with db.read() as session:
        connection = await session.connection()
        result = await connection.exec_driver_sql(
            "SELECT id, at, ok, count, note, state FROM prepared_probe ORDER BY id"
        )
        return [tuple(row[1:]) for row in result.all() if row[0].startswith(prefix)]


async def test_inserts_store_exactly_what_sqlalchemy_stores(db: Database) -> None:
    async with db.write() as session:
        await session.execute(_ADD, _rows("sa-"))
    async with db.write() as session:
        await Prepared(_ADD).run_many(session, _rows("pr-"))

    by_sqlalchemy = await _stored(db, "sa-")
    prepared = await _stored(db, "pr-")

    assert len(prepared) == 4
    assert prepared == by_sqlalchemy
    assert {row[-1] for row in prepared} == {"NEW"}  # the statement's own literal


async def test_updates_bind_their_where_literals_and_nulls_like_sqlalchemy(db: Database) -> None:
    later = datetime(2027, 1, 1, tzinfo=UTC)
    for prefix in ("sa-", "pr-"):
        async with db.write() as session:
            await session.execute(_ADD, _rows(prefix))
    moves = [{"p_id": f"{{}}{n}", "p_state": f"MOVED{n}", "p_at": later} for n in (1, 3)]
    async with db.write() as session:
        await session.execute(_MOVE, [m | {"p_id": m["p_id"].format("sa-")} for m in moves])
    async with db.write() as session:
        await Prepared(_MOVE).run_many(
            session, [m | {"p_id": m["p_id"].format("pr-")} for m in moves]
        )

    prepared = await _stored(db, "pr-")
    assert prepared == await _stored(db, "sa-")
    assert [row[-1] for row in prepared] == ["MOVED1", "NEW", "MOVED3", "NEW"]
    assert prepared[0][3] is None  # note=None in the statement itself


async def test_no_rows_runs_nothing(db: Database) -> None:
    async with db.write() as session:
        await Prepared(_ADD).run_many(session, [])
    assert await _stored(db, "") == []
