"""SQLAlchemy's aiosqlite adaptation, with one trip to the connection's thread per statement.

aiosqlite runs each SQLite connection in a thread of its own; every call is a trip there
and back (a queue, the thread taking the GIL, a wake-up of the event loop). SQLAlchemy's
cursor makes three or four per statement: open an aiosqlite cursor, execute, fetch the
rows, close. Under load each trip waits its turn in a busy loop: a worker turn of seven
statements took 3 ms to begin and 2.7 ms more for its body at 200 events/s (issue 11), and
an emit waited for it. ``OneTripCursor`` runs the whole statement (cursor, execute, rows,
close) as one function in the thread, so a statement costs one trip.

Everything else is SQLAlchemy's and aiosqlite's own: the same thread per connection, the
same errors, the same transactions (commit and rollback are one trip each, as before).
Server-side cursors (``stream``) keep SQLAlchemy's cursor.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["OneTripCursor", "defer_inserts", "one_trip_dbapi"]

_Outcome = tuple[Any, list[Any], int, int | None, bool]
"""(description, rows, rowcount, lastrowid, in_transaction) of a statement run in the
connection's thread."""


_Statement = tuple[str, Any, bool]
"(operation, parameters, many): a statement deferred to the next trip (see defer_inserts)."


def _run(
    connection: aiosqlite.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None = None,
    deferred: Sequence[_Statement] = (),
) -> _Outcome:
    """In the connection's thread: ``begin`` (a deferred BEGIN) if any, the ``deferred``
    statements, then the statement and everything a DBAPI cursor tells of it. The sqlite3
    connection is looked up here, as aiosqlite's own calls do: a closed one raises the
    ValueError SQLAlchemy turns into OperationalError."""
    _before(connection, begin, deferred)
    cursor = connection._conn.cursor()
    try:
        _execute_one(cursor, operation, parameters, many)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        # After the rows: for UPDATE ... RETURNING, sqlite3 counts them as they are read.
        in_transaction = connection._conn.in_transaction
        return description, rows, cursor.rowcount, cursor.lastrowid, in_transaction
    finally:
        cursor.close()


def _before(
    connection: aiosqlite.Connection, begin: str | None, deferred: Sequence[_Statement]
) -> None:
    conn = connection._conn
    if begin is not None:
        conn.execute(begin)
    for operation, parameters, many in deferred:
        _execute_one(conn, operation, parameters, many)


def _execute_one(
    target: sqlite3.Cursor | sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> None:
    """One statement as a DBAPI cursor was given it (sqlite3's connection has the same
    execute and executemany)."""
    if many:
        target.executemany(operation, parameters)
    elif parameters is None:
        target.execute(operation)
    else:
        target.execute(operation, parameters)


def _commit(
    connection: aiosqlite.Connection, begin: str | None, deferred: Sequence[_Statement]
) -> None:
    """In the connection's thread: what is still to be sent, then COMMIT; if any of it
    fails, the transaction is rolled back here (its write lock released at once)."""
    try:
        _before(connection, begin, deferred)
    except BaseException:
        connection._conn.rollback()
        raise
    connection._conn.commit()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is one trip to the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor is opened (that was a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no aiosqlite cursor at all
        self._soft_closed_memoized = EMPTY_DICT
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # DBAPI: None before an insert

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open in the thread between statements

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        return self._trip(operation, seq_of_parameters, many=True)

    def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted: _OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        if operation in DEFERRED and not parameters and not many:
            # Sent with the transaction's first statement (one trip less per transaction).
            adapted.begin = operation
            self._answer_at_once(-1)
            return
        if adapted.defer_inserts and _is_plain_insert(operation):
            adapted.deferred.append((operation, parameters, many))
            self._answer_at_once(len(parameters) if many else 1)
            return
        begin, deferred = adapted.take_pending()
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            outcome: _Outcome = await_(
                connection._execute(_run, connection, operation, parameters, many, begin, deferred)
            )
        except Exception as error:
            adapted.idle = False  # it may have begun a transaction: a rollback will end it
            adapted._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid, in_transaction = outcome
        adapted.idle = not in_transaction
        self._rows = collections.deque(rows)

    def _answer_at_once(self, rowcount: int) -> None:
        """A statement kept for the next trip: no rows, and no turn of the event loop
        (SQLAlchemy's async layer requires every execution to await; this returns at once)."""
        self._description, self._rowcount, self._lastrowid = None, rowcount, None
        self._rows = collections.deque()
        await_(_nothing())


def _is_plain_insert(operation: Any) -> bool:
    """An INSERT of VALUES that answers nothing but its row count, known beforehand: no
    RETURNING, no OR or ON CONFLICT clause, no SELECT."""
    return (
        isinstance(operation, str)
        and operation.startswith("INSERT INTO ")
        and " VALUES " in operation
        and not any(word in operation for word in _NOT_PLAIN)
    )


_NOT_PLAIN = ("RETURNING", "ON CONFLICT", "SELECT")


async def _nothing() -> None:
    return None


DEFERRED = frozenset({"BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE"})
"""Statements that only open a transaction: each waits for the transaction's first
statement and goes to the connection's thread with it. Nothing happens on the connection
in between, so it is the same transaction, taken at the same point (an IMMEDIATE one's
write lock, and a failure to take it, come with that statement)."""


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("begin", "defer_inserts", "deferred", "idle")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # a subclass of it

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.begin: str | None = None
        "A BEGIN not sent yet (see DEFERRED)."
        self.defer_inserts = False
        "Until the transaction ends, plain INSERTs wait for the next trip (defer_inserts)."
        self.deferred: list[_Statement] = []
        "INSERTs not sent yet."
        self.idle = False
        """No transaction is open (as sqlite3 said after the last statement, or a commit
        or rollback since): a commit or rollback, such as the pool's when a connection is
        given back, needs no trip."""

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:
            # SQLAlchemy's own cursor, whose statements we do not see: what waits for the
            # next trip goes now, and a transaction may be open from here on.
            begin, deferred = self.take_pending()
            self.idle = False
            if begin is not None or deferred:
                connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
                try:
                    await_(connection._execute(_before, connection, begin, deferred))
                except Exception as error:
                    self._handle_exception(error)
        return super().cursor(server_side)

    def commit(self) -> None:
        begin, deferred = self._end()
        if not deferred:
            if self.idle:  # nothing ran (a BEGIN not sent yet included): nothing to commit
                return
            super().commit()
            self.idle = True
            return
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        self.idle = False
        try:
            await_(connection._execute(_commit, connection, begin, deferred))
        except Exception as error:
            self._handle_exception(error)
        self.idle = True

    def rollback(self) -> None:
        self._end()  # a BEGIN and INSERTs not sent yet: nothing to undo
        if self.idle:
            return
        super().rollback()
        self.idle = True

    def close(self) -> None:
        self._end()
        super().close()

    def take_pending(self) -> tuple[str | None, list[_Statement]]:
        """The BEGIN and INSERTs not sent yet, handed to the trip that sends them."""
        begin, deferred = self.begin, self.deferred
        self.begin, self.deferred = None, []
        return begin, deferred

    def _end(self) -> tuple[str | None, list[_Statement]]:
        """What is not sent yet, taken here: the transaction ends (no more deferring)."""
        self.defer_inserts = False
        return self.take_pending()


class _OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


async def defer_inserts(session: AsyncSession) -> None:
    """For the rest of ``session``'s transaction on this driver, plain INSERTs (no
    RETURNING) are not a trip of their own: they travel with the next statement, or with
    the COMMIT. An INSERT's error (an IntegrityError) is therefore raised by that later
    statement or by the commit, whose failure rolls the whole transaction back. Nothing
    changes on another driver."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted = raw.dbapi_connection
    if isinstance(adapted, _OneTripConnection):
        adapted.defer_inserts = True


def one_trip_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for ``create_async_engine(..., module=...)`` on ``sqlite+aiosqlite``."""
    return _OneTripDbapi(aiosqlite, sqlite3)
