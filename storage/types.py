"""Column types shared by the tables."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class _RandomPool:
    """Random bytes from the OS, read 4 KiB at a time.

    An ``os.urandom`` call per id released the GIL for a syscall, and a busy server (the
    SQLite driver's thread wanting the GIL too) then waited to get it back: 63 % of the
    group commit's delivery rows (issue 11). A child process after ``fork`` starts with
    an empty pool of its own, so two processes never share bytes."""

    SIZE = 4096

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._bytes, self._at = b"", 0

    def take(self, count: int) -> bytes:
        if self._at + count > len(self._bytes):
            self._bytes, self._at = secrets.token_bytes(self.SIZE), 0
        start = self._at
        self._at += count
        return self._bytes[start : self._at]


_POOL = _RandomPool()


def new_id() -> str:
    """A 32-character id that sorts by creation time (milliseconds), then at random."""
    return f"{time.time_ns() // 1_000_000:012x}{_POOL.take(10).hex()}"
