"""Ingest: events and their deliveries are written in one transaction, so nothing
accepted is ever lost; idempotency keys replay an earlier emit, dedup keys record a
twin without sending it.

A delivery written here starts PENDING (or SUPPRESSED, or BATCHED in its channel's open
digest: ``storage/digests.py``); ``storage/claims.py`` takes it from there, and
``storage/wakeup.py`` tells the workers it exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers
from sqlmodel import col

from tocsin.storage.digests import join_digests
from tocsin.storage.enums import DeliveryStatus, RouteOutcome
from tocsin.storage.tables import ChannelRow, DeliveryRow, EventRow, EventTypeRow
from tocsin.storage.types import new_id
from tocsin.storage.wakeup import notify_new_deliveries

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "Decision",
    "Matcher",
    "NewEvent",
    "WrittenEvent",
    "dedup_reason",
    "judge",
    "metadata_fingerprint",
    "write_events",
]

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_REASON = 500
"delivery.reason's length: a longer sentence is cut rather than fail the whole emit."


@dataclass(slots=True)
class NewEvent:
    type: str
    title: str
    detail: str | None
    metadata: dict[str, Any]
    priority: str
    dedup_key: str | None
    idempotency_key: str | None
    source: str | None
    occurred_at: datetime
    category: str | None = None
    "The event type's category in the catalog (routing by ``eventCategories``)."


@dataclass(slots=True)
class WrittenEvent:
    event: EventRow
    deduplicated: bool
    "Recorded, but not sent: a twin within the type's dedup window was sent already."
    replayed: bool = False
    "The idempotency key was seen before; this is the first event, nothing new was stored."
    delivery_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    """What routing decided for one event and one channel, and the sentence that says why."""

    outcome: RouteOutcome
    reason: str


Matcher = Callable[[ChannelRow, NewEvent, datetime], Decision]
"Routing (``resolvers/routing.route``): the decision for one channel and one new event."

_SENT = frozenset({RouteOutcome.SEND, RouteOutcome.DIGEST})


def judge(decision: Decision, dedup: str | None) -> Decision:
    """Routing's decision for a channel once dedup has spoken: a deduplicated event is
    recorded, not sent, so what routing would send is SUPPRESSED with the dedup reason."""
    if dedup is not None and decision.outcome in _SENT:
        return Decision(RouteOutcome.SUPPRESSED, dedup)
    return decision


async def dedup_reason(session: AsyncSession, new: NewEvent, *, now: datetime) -> str | None:
    """Read-only (for explainRouting): why ``new`` would be deduplicated now, or None.
    Takes no lock: it answers what the database says at this moment."""
    windows = await _dedup_windows(session, [new])
    last_sent = await _last_sent_by_dedup_key(session, [new], windows, now, lock=False)
    return _Dedup(windows, last_sent).reason(new, now)


def dedup_lock_key(event_type: str, dedup_key: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit number) of one (type, dedup key)."""
    digest = hashlib.sha256(f"tocsin.dedup:{event_type}:{dedup_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def metadata_fingerprint(metadata: dict[str, Any]) -> str:
    canonical = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    return "fp:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


async def write_events(
    session: AsyncSession,
    events: Sequence[NewEvent],
    *,
    now: datetime,
    matches: Matcher,
) -> list[WrittenEvent]:
    """Insert events and one delivery per channel that routing (``matches``) does not skip."""
    earlier = await _events_by_idempotency_key(session, events, now)
    windows = await _dedup_windows(session, events)
    dedup = _Dedup(windows, await _last_sent_by_dedup_key(session, events, windows, now))
    channels = list((await session.scalars(select(ChannelRow))).all())

    results: list[WrittenEvent] = []
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for new in events:
        key = new.idempotency_key
        if key is not None and key in earlier:
            results.append(WrittenEvent(earlier[key], deduplicated=False, replayed=True))
            continue
        dedup_says = dedup.reason(new, now)
        deduplicated = dedup_says is not None
        row = _event_row(new, deduplicated=deduplicated, now=now)
        written = WrittenEvent(row, deduplicated=deduplicated)
        results.append(written)
        if key is not None:
            earlier[key] = row
        event_rows.append(_event_values(row))
        if not deduplicated:
            dedup.mark_sent(new, now)
        for values in _deliveries_for(row, new, channels, matches, now, dedup_says):
            written.delivery_ids.append(values["id"])
            delivery_rows.append(values)
    # Core inserts, one executemany per table: the ORM's bulk path cost more than the rows.
    if event_rows:
        await session.execute(insert(_EVENT), event_rows)
    if delivery_rows:
        priorities = {values["id"]: values["priority"] for values in event_rows}
        await join_digests(session, delivery_rows, priorities=priorities)
        await session.execute(insert(_DELIVERY), delivery_rows)
        await notify_new_deliveries(session)
    return results


@dataclass(slots=True)
class _Dedup:
    """When each (type, dedup key) was last sent, against its type's window."""

    windows: dict[str, timedelta]
    last_sent: dict[tuple[str, str], datetime]

    def reason(self, new: NewEvent, now: datetime) -> str | None:
        """Why ``new`` is not sent: a twin was sent within its type's dedup window; or None."""
        if not new.dedup_key:
            return None
        window = self.windows.get(new.type)
        sent = self.last_sent.get((new.type, new.dedup_key))
        if not window or sent is None or now - sent >= window:
            return None
        ago = int((now - sent).total_seconds())
        return f"dedup: same dedupKey sent {ago} s ago (window {int(window.total_seconds())} s)"

    def mark_sent(self, new: NewEvent, now: datetime) -> None:
        if new.dedup_key:
            self.last_sent[(new.type, new.dedup_key)] = now


# _event_row builds rows with model_construct, which needs the mappers configured (an
# ORM instance made first would do it; a process whose first write is an emit has none).
configure_mappers()
_EVENT = EventRow.metadata.tables["event"]
_DELIVERY = DeliveryRow.metadata.tables["delivery"]


def _event_row(new: NewEvent, *, deduplicated: bool, now: datetime) -> EventRow:
    # Not inserted through the ORM (see write_events): constructed without validation,
    # which cost ten times more than the rest of the row (49 against 5 microseconds).
    return EventRow.model_construct(
        id=new_id(),
        type=new.type,
        title=new.title,
        detail=new.detail,
        metadata_=new.metadata,
        priority=new.priority,
        dedup_key=new.dedup_key,
        idempotency_key=new.idempotency_key,
        source=new.source,
        deduplicated=deduplicated,
        occurred_at=new.occurred_at,
        created_at=now,
    )


def _deliveries_for(
    row: EventRow,
    new: NewEvent,
    channels: Sequence[ChannelRow],
    matches: Matcher,
    now: datetime,
    dedup: str | None,
) -> list[dict[str, Any]]:
    """The delivery rows of one event: one per channel routing does not skip."""
    deliveries: list[dict[str, Any]] = []
    for channel in channels:
        decision = judge(matches(channel, new, now), dedup)
        if decision.outcome is RouteOutcome.SKIPPED:
            continue
        status = _STATUS_OF[decision.outcome]
        deliveries.append(
            {
                "id": new_id(),
                "event_id": row.id,
                "channel_id": channel.id,
                "channel_kind": channel.kind,
                "status": status,
                "attempt_count": 0,
                "next_attempt_at": now if status == DeliveryStatus.PENDING else None,
                "created_at": now,
                "reason": (
                    decision.reason[:MAX_REASON] if status == DeliveryStatus.SUPPRESSED else None
                ),
            }
        )
    return deliveries


_STATUS_OF = {
    RouteOutcome.SEND: DeliveryStatus.PENDING.value,
    RouteOutcome.DIGEST: DeliveryStatus.BATCHED.value,
    RouteOutcome.SUPPRESSED: DeliveryStatus.SUPPRESSED.value,
}


def _event_values(row: EventRow) -> dict[str, Any]:
    """The event's row for a Core insert: keys are column names (``metadata``)."""
    return {
        "id": row.id,
        "type": row.type,
        "title": row.title,
        "detail": row.detail,
        "metadata": row.metadata_,
        "priority": row.priority,
        "dedup_key": row.dedup_key,
        "idempotency_key": row.idempotency_key,
        "source": row.source,
        "deduplicated": row.deduplicated,
        "occurred_at": row.occurred_at,
        "created_at": row.created_at,
    }


async def _events_by_idempotency_key(
    session: AsyncSession, events: Sequence[NewEvent], now: datetime
) -> dict[str, EventRow]:
    keys = {e.idempotency_key for e in events if e.idempotency_key}
    if not keys:
        return {}
    cutoff = now - IDEMPOTENCY_WINDOW
    # A key older than the window is free again: release it so the unique index allows reuse.
    await session.execute(
        update(EventRow)
        .where(col(EventRow.idempotency_key).in_(keys), col(EventRow.created_at) <= cutoff)
        .values(idempotency_key=None)
    )
    rows = await session.scalars(select(EventRow).where(col(EventRow.idempotency_key).in_(keys)))
    return {row.idempotency_key: row for row in rows if row.idempotency_key}


async def _dedup_windows(session: AsyncSession, events: Sequence[NewEvent]) -> dict[str, timedelta]:
    types = {e.type for e in events if e.dedup_key}
    if not types:
        return {}
    rows = await session.execute(
        select(col(EventTypeRow.name), col(EventTypeRow.dedup_window_seconds)).where(
            col(EventTypeRow.name).in_(types)
        )
    )
    return {name: timedelta(seconds=seconds) for name, seconds in rows if seconds}


async def _lock_dedup_keys(session: AsyncSession, wanted: set[tuple[str, str]]) -> None:
    """On PostgreSQL, hold each (type, dedup key) until this transaction ends, so that two
    processes emitting twins at once take turns: the second sees the first one sent. The
    locks are taken in one order, so two batches sharing keys cannot deadlock. (SQLite has
    one writer at a time already.)"""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({dedup_lock_key(event_type, key) for event_type, key in wanted})
    await session.execute(
        text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": keys},
    )


async def _last_sent_by_dedup_key(
    session: AsyncSession,
    events: Sequence[NewEvent],
    windows: dict[str, timedelta],
    now: datetime,
    *,
    lock: bool = True,
) -> dict[tuple[str, str], datetime]:
    wanted = {(e.type, e.dedup_key) for e in events if e.dedup_key and e.type in windows}
    if not wanted:
        return {}
    if lock:
        await _lock_dedup_keys(session, wanted)
    conditions = [
        and_(
            col(EventRow.type) == event_type,
            col(EventRow.dedup_key) == key,
            col(EventRow.created_at) > now - windows[event_type],
        )
        for event_type, key in wanted
    ]
    stmt = (
        select(col(EventRow.type), col(EventRow.dedup_key), func.max(col(EventRow.created_at)))
        .where(col(EventRow.deduplicated).is_(False), or_(*conditions))
        .group_by(col(EventRow.type), col(EventRow.dedup_key))
    )
    rows = await session.execute(stmt)
    return {(t, k): at for t, k, at in rows if k is not None}
