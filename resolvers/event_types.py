"""The event-type catalog: built-ins seeded by migration, more registered by admins."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, ProblemError, Problems
from tocsin.storage.tables import EventTypeRow

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}\Z")  # \Z: "$" would admit a final newline
MAX_DEDUP_WINDOW = 30 * 86400


async def list_event_types(
    ctx: Context, *, category: str | None = None, search: str | None = None
) -> list[EventTypeRow]:
    """The catalog, or the types of one category, or those whose name or description holds
    ``search`` (ignoring case)."""
    async with ctx.db.read() as session:
        stmt = select(EventTypeRow).order_by(EventTypeRow.category, EventTypeRow.name)
        if category is not None:
            stmt = stmt.where(col(EventTypeRow.category) == category)
        rows = list((await session.scalars(stmt)).all())
    if search:
        # In Python, not SQL: the catalog is small, and LIKE would read % and _ as patterns.
        wanted = search.casefold()
        rows = [
            r for r in rows if wanted in r.name.casefold() or wanted in r.description.casefold()
        ]
    return rows


async def register_event_type(
    ctx: Context, name: str, changes: dict[str, Any]
) -> tuple[EventTypeRow | None, list[Problem]]:
    """Add a type, or change one; a built-in keeps its name, category and description."""
    problems = Problems()
    if not _NAME.match(name):
        problems.add(
            "name",
            "INVALID_NAME",
            "Use lower-case letters, digits, '_', '.' or '-', starting with a letter (≤ 64).",
        )
    window = changes.get("dedup_window_seconds")
    if window is not None and not 0 <= window <= MAX_DEDUP_WINDOW:
        problems.add("dedupWindowSeconds", "OUT_OF_RANGE", "Use 0 to 2592000 seconds (30 days).")
    for key, limit in (("category", 64), ("description", 1000)):
        value = changes.get(key)
        if value is not None and len(value) > limit:
            problems.add(key, "TOO_LONG", f"Use at most {limit} characters.")
    if problems:
        return None, problems.items
    try:
        try:
            return await _store(ctx, name, changes), []
        except IntegrityError:
            # Another admin created the type between our read and our insert: it exists
            # now, so once more is an update of it.
            return await _store(ctx, name, changes), []
    except ProblemError as exc:
        return None, exc.problems


async def _store(ctx: Context, name: str, changes: dict[str, Any]) -> EventTypeRow:
    async with ctx.db.write() as session:
        row = await session.get(EventTypeRow, name, with_for_update=True)
        creating = row is None
        if row is None:
            row = EventTypeRow(
                name=name, category="custom", default_priority="MEDIUM", built_in=False
            )
        elif row.built_in and (
            {"category", "description"} & {k for k, v in changes.items() if v is not None}
        ):
            raise ProblemError(
                [
                    Problem(
                        ["category"],
                        "BUILT_IN",
                        "A built-in type's category and description are fixed.",
                    )
                ]
            )
        applied = {k: v for k, v in changes.items() if v is not None or k.startswith("dedup")}
        for key, value in applied.items():
            setattr(row, key, value)
        session.add(row)
        record_audit(
            session,
            actor=ctx.principal.name,
            action="event_type.create" if creating else "event_type.update",
            target=name,
            details=applied,
        )
    return row
