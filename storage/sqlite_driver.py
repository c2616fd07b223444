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
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["OneTripCursor", "one_trip_dbapi"]

_Outcome = tuple[Any, list[Any], int, int | None]
"(description, rows, rowcount, lastrowid) of a statement run in the connection's thread."


def _run(
    connection: aiosqlite.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None = None,
) -> _Outcome:
    """In the connection's thread: ``begin`` (a deferred BEGIN) if any, then the statement
    and everything a DBAPI cursor tells of it. The sqlite3 connection is looked up here,
    as aiosqlite's own calls do: a closed one raises the ValueError SQLAlchemy turns into
    OperationalError."""
    if begin is not None:
        connection._conn.execute(begin)
    cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        # After the rows: for UPDATE ... RETURNING, sqlite3 counts them as they are read.
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


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
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = collections.deque()
            # SQLAlchemy's async layer requires every execution to await: this one returns
            # at once, without a turn of the event loop.
            await_(_nothing())
            return
        begin, adapted.begin = adapted.begin, None
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            outcome: _Outcome = await_(
                connection._execute(_run, connection, operation, parameters, many, begin)
            )
        except Exception as error:
            adapted._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


async def _nothing() -> None:
    return None


DEFERRED = frozenset({"BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE"})
"""Statements that only open a transaction: each waits for the transaction's first
statement and goes to the connection's thread with it. Nothing happens on the connection
in between, so it is the same transaction, taken at the same point (an IMMEDIATE one's
write lock, and a failure to take it, come with that statement)."""


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("begin",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # a subclass of it

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.begin: str | None = None
        "A BEGIN not sent yet (see DEFERRED)."

    def commit(self) -> None:
        if self.begin is not None:  # a transaction that ran nothing: nothing to commit
            self.begin = None
            return
        super().commit()

    def rollback(self) -> None:
        if self.begin is not None:
            self.begin = None
            return
        super().rollback()

    def close(self) -> None:
        self.begin = None
        super().close()


class _OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for ``create_async_engine(..., module=...)`` on ``sqlite+aiosqlite``."""
    return _OneTripDbapi(aiosqlite, sqlite3)
