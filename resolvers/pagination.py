"""Keyset pagination, newest first, over tables whose ids sort by creation time.

The cursor is the last row's id (opaque to clients): a page is ``id < cursor ORDER BY id
DESC LIMIT n``, an index range on the primary key however deep the page, never an
offset. ``totalCount`` is counted exactly up to ``COUNT_BOUND`` rows (a LIMITed subquery,
so a table of millions costs at most that many index entries); past it, it is the bound.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.resolvers.problems import Problem, ProblemError

T = TypeVar("T")
MAX_PAGE = 200
COUNT_BOUND = 10_000
"totalCount is exact up to this many rows; past it, it is this number."
TOTAL_COUNT_DESCRIPTION = (
    f"How many match: exact up to {COUNT_BOUND}; when more match, {COUNT_BOUND} (read it as "
    "'at least'), so that counting stays fast on tables of millions."
)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    nodes: list[T]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


def encode_cursor(row_id: str) -> str:
    return base64.urlsafe_b64encode(row_id.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ProblemError(
            [Problem(["after"], "INVALID_CURSOR", "This cursor is not one Tocsin gave out.")]
        ) from None


async def paginate(
    session: AsyncSession, stmt: Select[Any], id_column: Any, *, first: int, after: str | None
) -> Page[Any]:
    if not 0 <= first <= MAX_PAGE:
        raise ProblemError(
            [Problem(["first"], "OUT_OF_RANGE", f"Ask for 0 to {MAX_PAGE} items at a time.")]
        )
    bounded = stmt.order_by(None).limit(COUNT_BOUND).subquery()
    total = await session.scalar(select(func.count()).select_from(bounded))
    page_stmt = stmt.order_by(id_column.desc()).limit(first + 1)
    if after is not None:
        page_stmt = page_stmt.where(id_column < decode_cursor(after))
    rows = list((await session.scalars(page_stmt)).all())
    has_next = len(rows) > first
    rows = rows[:first]
    end_cursor = encode_cursor(rows[-1].id) if rows else None
    return Page(rows, has_next, end_cursor, int(total or 0))
