"""emitEvent: validate, then hand the event to the group committer, which writes it with
its deliveries in one transaction shared with every other emit of the moment."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tocsin.errors import TocsinError
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, Problems
from tocsin.resolvers.routing import route
from tocsin.resolvers.validation import non_finite_at
from tocsin.storage.database import Database
from tocsin.storage.enums import Priority
from tocsin.storage.ingest import NewEvent, WrittenEvent, metadata_fingerprint, write_events
from tocsin.storage.tables import EventTypeRow
from tocsin.storage.types import utcnow

log = logging.getLogger("tocsin.emit")

MAX_TITLE = 500
MAX_DETAIL = 10_000
MAX_METADATA_BYTES = 16 * 1024
MAX_KEY = 200
MAX_BATCH = 1000
GATHER_TURNS = 64
"The most turns of the event loop a group commit waits for emits under way (_gather)."
FINGERPRINTED_TYPES = {"schema_drift"}
CATALOG_SECONDS = 2.0
NOT_FINITE = "is not a finite number: JSON has no NaN or Infinity, nor numbers beyond 1.8e308."
OVERLOADED_RETRY_AFTER = 1

Pending = tuple[list[NewEvent], asyncio.Future[list[WrittenEvent]]]


class EmitRefused(TocsinError, GraphQLError):
    """An emit that was not stored, with the whole seconds after which to try again
    (``extensions.retryAfter``; app.py answers it as the HTTP status and Retry-After)."""

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, extensions={"code": code, "retryAfter": retry_after})
        self.retry_after = retry_after

    @classmethod
    def rate_limited(cls, retry_after: int) -> EmitRefused:
        return cls(
            "This token emits more events per second than TOCSIN_EMIT_RATE_LIMIT allows; "
            f"nothing was stored. Try again in {retry_after} s.",
            code="RATE_LIMITED",
            retry_after=retry_after,
        )

    @classmethod
    def overloaded(cls) -> EmitRefused:
        return cls(
            "Tocsin is writing events slower than they arrive; nothing was stored. "
            f"Try again in {OVERLOADED_RETRY_AFTER} s.",
            code="OVERLOADED",
            retry_after=OVERLOADED_RETRY_AFTER,
        )


@dataclass(slots=True)
class EmitRequest:
    """One EmitEventInput as plain values."""

    type: str
    title: str
    detail: str | None = None
    metadata: Any = None
    priority: Priority | None = None
    dedup_key: str | None = None
    idempotency_key: str | None = None
    occurred_at: datetime | None = None


class EventTypeCatalog:
    """The event types, read at most every two seconds (they change rarely)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._types: dict[str, EventTypeRow] = {}
        self._read_at = -1e9
        self._lock = asyncio.Lock()

    async def get(self) -> dict[str, EventTypeRow]:
        if time.monotonic() - self._read_at > CATALOG_SECONDS:
            async with self._lock:
                if time.monotonic() - self._read_at > CATALOG_SECONDS:
                    async with self._db.read() as session:
                        rows = (await session.scalars(select(EventTypeRow))).all()
                    self._types = {row.name: row for row in rows}
                    self._read_at = time.monotonic()
        return self._types

    def invalidate(self) -> None:
        self._read_at = -1e9


class GroupCommitter:
    """Writes the emits that arrive while the previous commit runs in one transaction.

    At most ``limit`` events wait for the writer: past that, ``submit`` refuses at once
    (EmitRefused OVERLOADED) instead of queueing without end; what it accepts it writes.
    """

    def __init__(
        self,
        db: Database,
        on_commit: Callable[[], None] | None = None,
        *,
        limit: int = 10_000,
    ) -> None:
        self._db = db
        self._on_commit = on_commit
        self._limit = limit
        self._queue: deque[Pending] = deque()
        self._waiting = 0
        self._writing = 0
        self._runner: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Events queued behind the commit under way."""
        return self._waiting

    @property
    def writing(self) -> int:
        """Events in the commit under way."""
        return self._writing

    async def submit(self, events: list[NewEvent]) -> list[WrittenEvent]:
        # An empty queue takes any call (up to MAX_BATCH), so a limit below a call's size
        # slows that call down rather than refusing it for ever.
        if self._waiting and self._waiting + len(events) > self._limit:
            raise EmitRefused.overloaded()
        future: asyncio.Future[list[WrittenEvent]] = asyncio.get_running_loop().create_future()
        self._queue.append((events, future))
        self._waiting += len(events)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            await self._gather()
            batch: list[Pending] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0][0]) <= MAX_BATCH):
                item = self._queue.popleft()
                self._waiting -= len(item[0])
                batch.append(item)
                size += len(item[0])
            self._writing = size
            try:
                await self._commit(batch)
            finally:
                self._writing = 0

    async def _gather(self) -> None:
        """Let the emits already under way join the group before it is cut: one turn of
        the event loop after another while the last one brought a new emit, at most
        ``GATHER_TURNS``. A request reaches ``submit`` over several turns (its bytes read,
        its task run, its document executed); cutting at the first emit made groups of 8
        out of 16 concurrent emitters, each commit paying its fixed cost (a session, the
        channels' read, two trips) for half of them (issue 11). A lone emit waits one
        turn; nothing waits for the network."""
        for _ in range(GATHER_TURNS):
            queued = len(self._queue)
            await asyncio.sleep(0)
            if len(self._queue) == queued or self._waiting >= MAX_BATCH:
                return

    async def _commit(self, batch: list[Pending]) -> None:
        events = [event for events, _ in batch for event in events]
        try:
            written = await self._write(events)
        except IntegrityError:
            if len(batch) == 1:
                # Another process took an idempotency key meanwhile: once more sees it.
                retried = await self._write_or_fail(batch, events)
                if retried is None:
                    return
                written = retried
            else:
                for item in batch:
                    await self._commit([item])
                return
        except Exception as exc:
            log.exception("emit batch of %d events failed", len(events))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:
                # The events are committed: their emitters get their answers regardless.
                log.exception("waking the worker after a commit failed")
        start = 0
        for items, future in batch:
            if not future.done():
                future.set_result(written[start : start + len(items)])
            start += len(items)

    async def _write(self, events: list[NewEvent]) -> list[WrittenEvent]:
        # Pipelined: an emit is a read of the channels and one more trip, the inserts and
        # the COMMIT together; an IntegrityError from them is handled as before (_commit).
        async with self._db.write(pipelined=True) as session:
            return await write_events(session, events, now=utcnow(), matches=route)

    async def _write_or_fail(
        self,
        batch: list[Pending],
        events: list[NewEvent],
    ) -> list[WrittenEvent] | None:
        try:
            return await self._write(events)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return None


def prepare_event(
    request: EmitRequest,
    types: dict[str, EventTypeRow],
    *,
    source: str,
    now: datetime,
    problems: Problems,
    prefix: list[str],
) -> NewEvent | None:
    """Check one input; a NewEvent, or None with the problems added."""
    before = len(problems.items)

    def fail(name: str, code: str, message: str) -> None:
        problems.add([*prefix, name], code, message)

    event_type = types.get(request.type)
    if event_type is None:
        fail("type", "UNKNOWN_EVENT_TYPE", f"No event type {request.type!r} is registered.")
    elif not event_type.enabled:
        fail("type", "EVENT_TYPE_DISABLED", f"The event type {request.type!r} is disabled.")
    title = request.title.strip()
    if not title:
        fail("title", "REQUIRED", "Give the event a title.")
    elif len(title) > MAX_TITLE:
        fail("title", "TOO_LONG", f"Use a title of at most {MAX_TITLE} characters.")
    if request.detail is not None and len(request.detail) > MAX_DETAIL:
        fail("detail", "TOO_LONG", f"Use a detail of at most {MAX_DETAIL} characters.")
    metadata = {} if request.metadata is None else request.metadata
    if not isinstance(metadata, dict):
        fail("metadata", "INVALID_METADATA", "Metadata is a JSON object.")
    elif (where := non_finite_at(metadata)) is not None:
        fail("metadata", "INVALID_METADATA", f"The number at metadata.{where} {NOT_FINITE}")
    elif len(json.dumps(metadata, default=str).encode()) > MAX_METADATA_BYTES:
        fail("metadata", "TOO_LARGE", "Metadata may be at most 16 KiB of JSON.")
    for name, value in (
        ("dedupKey", request.dedup_key),
        ("idempotencyKey", request.idempotency_key),
    ):
        if value is not None and not 0 < len(value) <= MAX_KEY:
            fail(name, "INVALID_KEY", f"Use 1 to {MAX_KEY} characters.")
    if len(problems.items) > before or event_type is None:
        return None
    dedup_key = request.dedup_key
    if dedup_key is None and request.type in FINGERPRINTED_TYPES:
        dedup_key = metadata_fingerprint(metadata)
    priority = request.priority.value if request.priority else event_type.default_priority
    return NewEvent(
        type=request.type,
        title=title,
        detail=request.detail,
        metadata=metadata,
        priority=priority,
        dedup_key=dedup_key,
        idempotency_key=request.idempotency_key,
        source=source,
        occurred_at=request.occurred_at or now,
        category=event_type.category,
    )


def _check_rate(ctx: Context, count: int) -> None:
    """Raise RATE_LIMITED when the caller's token has emitted its share for now."""
    limiter = ctx.services.rate_limiter
    if limiter is None:
        return
    retry_after = limiter.admit(ctx.principal.token_id or ctx.principal.name, count)
    if retry_after:
        raise EmitRefused.rate_limited(retry_after)


async def emit_events(
    ctx: Context, requests: list[EmitRequest], *, batch: bool
) -> tuple[list[WrittenEvent | None], list[Problem]]:
    """Accept the valid events (stored with their deliveries before this returns) and
    answer None with problems for the others. Raises EmitRefused, storing nothing, when
    the token is over TOCSIN_EMIT_RATE_LIMIT or the writer is too far behind."""
    problems = Problems()
    if len(requests) > MAX_BATCH:
        problems.add("inputs", "TOO_MANY", f"Send at most {MAX_BATCH} events per call.")
        return [], problems.items
    _check_rate(ctx, len(requests))
    types = await ctx.services.catalog.get()
    now = utcnow()
    prepared = [
        prepare_event(
            request,
            types,
            source=ctx.principal.name,
            now=now,
            problems=problems,
            prefix=["inputs", str(index)] if batch else [],
        )
        for index, request in enumerate(requests)
    ]
    valid = [event for event in prepared if event is not None]
    written = iter(await ctx.services.committer.submit(valid) if valid else [])
    return [next(written) if event is not None else None for event in prepared], problems.items
