"""On SQLite every statement is one trip to the connection's thread (storage/sqlite_driver.py),
and says what a DBAPI cursor says: rows, row counts, RETURNING, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tocsin.storage.database import Database, create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


class Trips:
    """Counts the calls queued for one aiosqlite connection's thread."""

    def __init__(self, aiosqlite_connection: Any) -> None:
        self.count = 0
        queue = aiosqlite_connection._tx
        put = queue.put_nowait

        def counted(item: Any) -> None:
            self.count += 1
            put(item)

        self._queue, self._put = queue, put
        aiosqlite_connection._tx = _Counting(queue, counted)
        self._owner = aiosqlite_connection

    def stop(self) -> None:
        self._owner._tx = self._queue


class _Counting:
    def __init__(self, queue: Any, put_nowait: Any) -> None:
        self._queue, self.put_nowait = queue, put_nowait

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


async def _trips_of(conn: Any, statement: str, params: Any = None) -> tuple[int, Any]:
    raw = await conn.get_raw_connection()
    trips = Trips(raw.driver_connection)
    try:
        result = await conn.execute(text(statement), params)
    finally:
        trips.stop()
    return trips.count, result


async def test_a_statement_is_one_trip_to_the_thread(engine: AsyncEngine) -> None:
    """SQLAlchemy's own cursor made three or four: open a cursor, execute, fetch, close."""
    async with engine.begin() as conn:
        trips, _ = await _trips_of(conn, "INSERT INTO t (name) VALUES ('a'), ('b')")
        assert trips == 1
        trips, result = await _trips_of(conn, "SELECT name FROM t ORDER BY id")
        assert trips == 1
        assert result.scalars().all() == ["a", "b"]


async def test_row_counts_returning_and_executemany_are_reported(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(
            text("INSERT INTO t (name) VALUES (:n)"), [{"n": "x"}, {"n": "y"}, {"n": "z"}]
        )
        assert inserted.rowcount == 3
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE name != 'z'"))
        assert updated.rowcount == 2
        returned = await conn.execute(
            text("UPDATE t SET name = upper(name) WHERE name = 'z' RETURNING id, name")
        )
        assert [tuple(row) for row in returned] == [(3, "Z")]
        last = await conn.execute(text("INSERT INTO t (name) VALUES ('w')"))
        assert last.lastrowid == 4
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 4


async def test_a_failing_statement_raises_sqlalchemys_error_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('only')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('other')"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('only')"))
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["only"]


async def test_streamed_results_still_work(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO t (name) VALUES (:n)"), [{"n": str(i)} for i in range(5)]
        )
    async with engine.connect() as conn:
        streamed = await conn.stream(text("SELECT name FROM t ORDER BY id"))
        assert [row[0] async for row in streamed] == ["0", "1", "2", "3", "4"]


async def test_one_write_after_another_takes_the_same_connection(engine: AsyncEngine) -> None:
    # given a pool holding several idle connections (readers opened them at once)
    database = Database(engine)
    async with database.read() as a, database.read() as b, database.read() as c:
        for session in (a, b, c):
            await session.execute(text("SELECT 1"))

    async def writer_connection() -> Any:
        async with database.write() as session:
            await session.execute(text("INSERT INTO t (name) VALUES (NULL)"))
            return (await (await session.connection()).get_raw_connection()).dbapi_connection

    # when writes follow one another
    first = await writer_connection()
    later = [await writer_connection() for _ in range(3)]
    # then each takes the connection the last one gave back (its page cache is warm: SQLite
    # empties a connection's cache whenever another connection wrote since its last use)
    assert all(connection is first for connection in later)


async def test_a_write_transaction_sends_its_begin_with_its_first_statement(
    engine: AsyncEngine,
) -> None:
    # given a connection in a write transaction (BEGIN IMMEDIATE, as Database.write opens)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        trips = Trips(raw.driver_connection)
        try:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            # when its first statement runs
            await conn.execute(text("INSERT INTO t (name) VALUES ('first')"))
            begun_with_it = trips.count
            # then BEGIN and the statement made one trip, and the transaction is the one
            # BEGIN opened: another connection cannot write until it ends
            assert begun_with_it == 1
            async with engine.connect() as other:
                await other.exec_driver_sql("PRAGMA busy_timeout=0")
                with pytest.raises(OperationalError, match="locked"):
                    await other.execute(text("INSERT INTO t (name) VALUES ('meanwhile')"))
            await conn.commit()
        finally:
            trips.stop()
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["first"]


async def test_a_transaction_that_runs_nothing_commits_and_rolls_back_quietly(
    engine: AsyncEngine,
) -> None:
    database = Database(engine)
    async with database.write():
        pass
    with pytest.raises(RuntimeError):
        async with database.write():
            raise RuntimeError("nothing written")
    # and the connection is fit for the next transaction
    async with database.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('after')"))
    async with database.read() as session:
        assert (await session.execute(text("SELECT name FROM t"))).scalars().all() == ["after"]


async def _trips_of_write(database: Database, *statements: tuple[str, Any]) -> int:
    """The trips a pipelined write of ``statements`` makes after its BEGIN, commit included."""
    async with database.write(pipelined=True) as session:
        raw = await (await session.connection()).get_raw_connection()
        trips = Trips(raw.driver_connection)
        try:
            for statement, params in statements:
                await session.execute(text(statement), params)
            await session.commit()
        finally:
            trips.stop()
    return trips.count


async def test_a_pipelined_write_sends_its_inserts_with_its_commit(engine: AsyncEngine) -> None:
    database = Database(engine)
    # when a pipelined write inserts a row, then many, then commits
    trips = await _trips_of_write(
        database,
        ("INSERT INTO t (name) VALUES ('one')", None),
        ("INSERT INTO t (name) VALUES (:n)", [{"n": "two"}, {"n": "three"}]),
    )
    # then BEGIN, both inserts and the COMMIT went to the thread together
    assert trips == 1
    async with database.read() as session:
        names = (await session.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
    assert names == ["one", "two", "three"]


async def test_a_statement_after_pipelined_inserts_sees_them(engine: AsyncEngine) -> None:
    database = Database(engine)
    async with database.write(pipelined=True) as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('seen')"))
        counted = (await session.execute(text("SELECT count(*) FROM t"))).scalar()
        # an INSERT ... RETURNING answers rows: it is sent at once, never deferred
        returned = await session.execute(
            text("INSERT INTO t (name) VALUES ('back') RETURNING name")
        )
        assert returned.scalars().all() == ["back"]
    assert counted == 1


async def test_a_pipelined_inserts_error_comes_from_the_commit_and_undoes_it_all(
    engine: AsyncEngine,
) -> None:
    database = Database(engine)
    async with database.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('taken')"))
    # when a pipelined write's second insert breaks the unique name
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with database.write(pipelined=True) as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('new')"))
            await session.execute(text("INSERT INTO t (name) VALUES ('taken')"))
    # then nothing of that transaction is stored, and the write lock is free at once
    async with engine.connect() as other:
        await other.exec_driver_sql("PRAGMA busy_timeout=0")
        await other.exec_driver_sql("BEGIN IMMEDIATE")
        await other.exec_driver_sql("ROLLBACK")
    # and the next write, pipelined or not, works on the same connection
    async with database.write(pipelined=True) as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('after')"))
    async with database.read() as session:
        names = (await session.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
    assert names == ["taken", "after"]


async def test_a_rolled_back_pipelined_write_stores_nothing(engine: AsyncEngine) -> None:
    database = Database(engine)
    with pytest.raises(RuntimeError):
        async with database.write(pipelined=True) as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('never')"))
            raise RuntimeError("changed my mind")
    # and pipelining ended with that transaction: the next write's insert is its own trip
    async with database.write() as session:
        raw = await (await session.connection()).get_raw_connection()
        trips = Trips(raw.driver_connection)
        try:
            await session.execute(text("INSERT INTO t (name) VALUES ('now')"))
            assert trips.count == 1
        finally:
            trips.stop()
    async with database.read() as session:
        assert (await session.execute(text("SELECT name FROM t"))).scalars().all() == ["now"]


async def test_only_inserts_whose_answer_is_known_wait(engine: AsyncEngine) -> None:
    database = Database(engine)
    async with database.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('a')"))
    async with database.write(pipelined=True) as session:
        # an INSERT ... SELECT counts what it copied, an upsert what it did not skip
        copied = await session.execute(text("INSERT INTO t (name) SELECT name || '2' FROM t"))
        skipped = await session.execute(
            text("INSERT INTO t (name) VALUES ('a') ON CONFLICT (name) DO NOTHING")
        )
        assert (copied.rowcount, skipped.rowcount) == (1, 0)
        # and a streamed read sees the inserts waiting for the next trip
        await session.execute(text("INSERT INTO t (name) VALUES ('b')"))
        streamed = await session.stream(text("SELECT name FROM t ORDER BY id"))
        assert [row[0] async for row in streamed] == ["a", "a2", "b"]


async def test_a_connection_given_back_outside_a_transaction_costs_no_trip(
    engine: AsyncEngine,
) -> None:
    database = Database(engine)
    async with database.read() as session:
        await session.execute(text("SELECT 1"))
        raw = await (await session.connection()).get_raw_connection()
        trips = Trips(raw.driver_connection)
    # the pool's rollback of a connection that holds no transaction is not sent
    trips.stop()
    assert trips.count == 0
    # but one whose first statement failed after its BEGIN is rolled back: the lock is free
    async with database.write() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('x')"))
    with pytest.raises(IntegrityError):
        async with database.write() as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('x')"))
    async with engine.connect() as other:
        await other.exec_driver_sql("PRAGMA busy_timeout=0")
        await other.exec_driver_sql("BEGIN IMMEDIATE")
        await other.exec_driver_sql("ROLLBACK")
