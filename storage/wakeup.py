"""Wake-up: on PostgreSQL, a commit that adds deliveries wakes every worker process
(LISTEN/NOTIFY). Workers poll besides, so a lost notification only costs a poll."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = ["NOTIFY_CHANNEL", "DeliveryListener", "notify_new_deliveries"]

NOTIFY_CHANNEL = "tocsin_deliveries"


async def notify_new_deliveries(session: AsyncSession) -> None:
    """On PostgreSQL, wake every worker process when this transaction commits (NOTIFY is
    transactional: a rolled-back emit wakes no one). Workers poll besides."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


class DeliveryListener:
    """A dedicated PostgreSQL connection that calls ``on_notify`` for every NOTIFY of new
    deliveries. If it is lost the worker still polls; it is not re-opened."""

    def __init__(self, connection: Any, on_notify: Callable[[], None]) -> None:
        self._connection = connection
        self._on_notify = on_notify

    @classmethod
    async def open(cls, engine: AsyncEngine, on_notify: Callable[[], None]) -> DeliveryListener:
        import asyncpg

        url = engine.url.set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        listener = cls(connection, on_notify)
        await connection.add_listener(NOTIFY_CHANNEL, listener._notified)
        return listener

    def _notified(self, *_: Any) -> None:
        self._on_notify()

    async def close(self) -> None:
        await self._connection.close()
