"""The digest scheduler: closes each due digest into its delivery, then sleeps until the
next one falls due (or until new deliveries are committed: a new digest may fall due
sooner). Runs beside the delivery worker, in ``tocsin serve`` and ``tocsin worker``; any
number may run on one PostgreSQL database (each digest is closed by exactly one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from tocsin.storage.database import Database
from tocsin.storage.digests import close_due_digests, next_due
from tocsin.storage.types import utcnow

__all__ = ["DigestScheduler"]

log = logging.getLogger("tocsin.digests")

MAX_SLEEP = 30.0
"Seconds; the longest sleep without a look, should a wake-up from another process be missed."
MIN_SLEEP = 0.05
"Seconds; a due digest another process holds (joining or closing it) is looked at again."
MIN_GAP = 0.25
"Seconds between two looks however often commits wake it (a new digest is due in >= 1 s)."


class DigestScheduler:
    """One task: close what is due, sleep until the next due time or a ``wake()``."""

    def __init__(
        self, db: Database, intervals: Mapping[str, int], on_closed: Callable[[], None]
    ) -> None:
        """``on_closed``: digest deliveries were committed (wake the worker)."""
        self._db = db
        self._intervals = dict(intervals)
        self._on_closed = on_closed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tocsin-digests")

    async def stop(self) -> None:
        """Cancel the loop; a close under way rolls back and is done by the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        last = -MIN_GAP
        while True:
            await asyncio.sleep(max(last + MIN_GAP - time.monotonic(), 0))
            last = time.monotonic()
            self._wake.clear()
            try:
                delay = await self.close_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("closing due digests failed; trying again shortly")
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def close_due(self) -> float:
        """Close the digests due now; answer the seconds until the next one is due."""
        due = await self._next_due()
        if due is not None and due <= utcnow():
            async with self._db.write() as session:
                closed = await close_due_digests(session, now=utcnow(), intervals=self._intervals)
            if closed:
                log.info("closed %d digests", len(closed))
            if any(c.delivery_id for c in closed):
                self._on_closed()
            due = await self._next_due()
        if due is None:
            return MAX_SLEEP
        return min(max((due - utcnow()).total_seconds(), MIN_SLEEP), MAX_SLEEP)

    async def _next_due(self) -> datetime | None:
        async with self._db.read() as session:
            return await next_due(session, intervals=self._intervals)
