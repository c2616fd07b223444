"""Core statements compiled once per dialect and run as ``executemany`` on the driver.

SQLAlchemy builds each row's parameters afresh on every execute: it walks the compiled
statement's binds, looks each value up, runs its type's processor. For the worker's two
statements per turn (an attempt added and a delivery moved on, for every outcome) that
was 6 % of a drain's main thread (issue 11, py-spy). ``Prepared`` does the same work
once per dialect (the SQL, its positional order, each bind's processor, all from
SQLAlchemy's own compiler and types) and then only turns each row into a tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Prepared"]

_Bind = tuple[str, Callable[[Any], Any] | None, Any]
"(name, its type's processor on this dialect, the statement's own value of it)."


class Prepared:
    """``statement`` (named bind parameters, a positional paramstyle on every dialect we
    run: SQLite's ``?``, asyncpg's ``$n``), ready to run with many rows at once."""

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        self._by_dialect: dict[str, tuple[str, tuple[_Bind, ...]]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[_Bind, ...]]:
        made = self._by_dialect.get(dialect.name)
        if made is None:
            compiled = self._statement.compile(dialect=dialect)
            names = compiled.positiontup
            if names is None:
                raise TypeError(f"{dialect.name}: Prepared needs a positional paramstyle")
            # The binds as compiled: a ``values(column=bindparam(...))`` takes the column's
            # type only there; each type as this dialect implements it (SQLite's DATETIME
            # writes text, with the microseconds always). A bind the rows do not name (a
            # literal of the statement, ``status == 'SENDING'``) keeps the statement's value.
            compiled_binds = {name: bind for bind, name in compiled.bind_names.items()}
            binds = tuple(
                (
                    name,
                    compiled_binds[name].type.dialect_impl(dialect).bind_processor(dialect),
                    compiled_binds[name].effective_value,
                )
                for name in names
            )
            made = self._by_dialect[dialect.name] = (compiled.string, binds)
        return made

    async def run_many(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in ``session``'s transaction, in one call."""
        if not rows:
            return
        connection = await session.connection()
        sql, binds = self._compiled(connection.dialect)
        await connection.exec_driver_sql(sql, _as_driver_rows(binds, rows))


def _as_driver_rows(
    binds: Sequence[_Bind], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row as the driver takes it: its values in the statement's order, each through
    its type's processor."""
    made = []
    for row in rows:
        values = []
        for name, process, given in binds:
            value = row.get(name, given)
            values.append(value if process is None else process(value))
        made.append(tuple(values))
    return made
