"""The live feed of accepted events behind ``Subscription.events``.

One ``EventFeed`` per process reads the event table, because on PostgreSQL another API
process may have accepted the event: a poller, started with the first subscriber and
stopped with the last, looks every ``interval`` seconds, and at once when this process's
own commit wakes it (``wake``, a flag set on the emit path and nothing more). It hands each
new event to every subscriber's bounded queue; a subscriber that does not keep up loses its
oldest events, and never slows the others or an emit.

The cursor is the event id, which begins with its creation time in milliseconds (the
primary key, so the poll is an index range): each poll reads the ids of the last
``lookback`` seconds, because an event is stamped before its transaction commits, and
remembers the ones it has handed out. Deduplicated events are rows like any other, so they
are included; an idempotent replay adds no row and is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy import select
from sqlmodel import col

from tocsin.storage.database import Database
from tocsin.storage.tables import EventRow

log = logging.getLogger("tocsin.live")

FETCH_CHUNK = 500


def id_floor(milliseconds: int) -> str:
    """The smallest event id created at ``milliseconds`` (ids start with it in hex)."""
    return f"{max(milliseconds, 0):012x}"


def id_milliseconds(event_id: str) -> int:
    try:
        return int(event_id[:12], 16)
    except ValueError:
        return 0


class EventFeed:
    """Fans newly accepted events out to subscribers (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.5,
        lookback: float = 3.0,
        queue_size: int = 200,
        min_gap: float = 0.05,
    ) -> None:
        self._db = db
        self._interval = interval
        self._lookback_ms = int(lookback * 1000)
        self._queue_size = queue_size
        self._min_gap = min_gap
        self._subscribers: set[asyncio.Queue[EventRow]] = set()
        self._seen: dict[str, int] = {}
        self._woken = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._poller is not None and not self._poller.done()

    def wake(self) -> None:
        """Events were committed in this process: look now rather than at the next tick."""
        if self._poller is not None:
            self._woken.set()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[EventRow]]:
        """A queue that receives every event accepted from now on, while the block runs."""
        queue: asyncio.Queue[EventRow] = asyncio.Queue(maxsize=self._queue_size)
        async with self._lock:
            if not self._subscribers:
                await self._start()
            self._subscribers.add(queue)
        try:
            yield queue
        finally:
            async with self._lock:
                self._subscribers.discard(queue)
                if not self._subscribers:
                    await self._stop()

    async def _start(self) -> None:
        # What is already there is not new: only what arrives after this is handed out.
        self._seen = {}
        for event_id in await self._recent_ids():
            self._seen[event_id] = id_milliseconds(event_id)
        self._woken.clear()
        self._poller = asyncio.create_task(self._run(), name="tocsin live event feed")

    async def _stop(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
        self._seen = {}

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._woken.wait()
            self._woken.clear()
            try:
                await self._poll()
            except Exception:
                log.exception("reading new events for the live feed failed")
            await asyncio.sleep(self._min_gap)  # a burst of commits costs one poll

    async def _recent_ids(self) -> list[str]:
        floor = id_floor(int(time.time() * 1000) - self._lookback_ms)
        async with self._db.read() as session:
            ids = await session.scalars(select(col(EventRow.id)).where(col(EventRow.id) >= floor))
            return list(ids.all())

    async def _poll(self) -> None:
        fresh = [event_id for event_id in await self._recent_ids() if event_id not in self._seen]
        if fresh:
            rows: list[EventRow] = []
            async with self._db.read() as session:
                for start in range(0, len(fresh), FETCH_CHUNK):
                    chunk = fresh[start : start + FETCH_CHUNK]
                    stmt = select(EventRow).where(col(EventRow.id).in_(chunk))
                    found = await session.scalars(stmt)
                    rows.extend(found.all())
            for row in sorted(rows, key=lambda r: (r.created_at, r.id)):
                self._seen[row.id] = id_milliseconds(row.id)
                self._publish(row)
        oldest = int(time.time() * 1000) - self._lookback_ms
        self._seen = {key: ms for key, ms in self._seen.items() if ms >= oldest}

    def _publish(self, row: EventRow) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a slow subscriber loses its oldest event
            queue.put_nowait(row)
