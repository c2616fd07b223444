"""The outbox: events and their deliveries are written in one transaction, and
claimed by workers with a lease so nothing accepted is ever lost.

Life of a delivery::

    PENDING ──claim──▶ SENDING ──ok──▶ DELIVERED
       ▲                  │ ├──permanent failure / retries spent──▶ FAILED
       │                  │ └──transient failure──▶ RETRYING (next_attempt_at)
       └── lease expired (crash) or retryDelivery ◀──────┘
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.outbox_lock import OutboxLock
from tocsin.storage.tables import (
    ChannelRow,
    DeliveryAttemptRow,
    DeliveryRow,
    EventRow,
    EventTypeRow,
)
from tocsin.storage.types import UTCDateTime, new_id

IDEMPOTENCY_WINDOW = timedelta(hours=24)
_DELIVERY = DeliveryRow.metadata.tables["delivery"]
"The delivery table, for executemany statements keyed by bound parameters."
_ATTEMPT = DeliveryAttemptRow.metadata.tables["delivery_attempt"]


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


@dataclass(slots=True)
class WrittenEvent:
    event: EventRow
    deduplicated: bool
    "Recorded, but not sent: a twin within the type's dedup window was sent already."
    replayed: bool = False
    "The idempotency key was seen before; this is the first event, nothing new was stored."
    delivery_ids: list[str] = field(default_factory=list)


def metadata_fingerprint(metadata: dict[str, Any]) -> str:
    canonical = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    return "fp:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


async def write_events(
    session: AsyncSession,
    events: Sequence[NewEvent],
    *,
    now: datetime,
    matches: Callable[[ChannelRow, NewEvent, datetime], str | None],
) -> list[WrittenEvent]:
    """Insert events and one delivery per matching channel; ``matches`` answers the initial
    delivery status for a channel (PENDING, SUPPRESSED) or None when it does not apply."""
    earlier = await _events_by_idempotency_key(session, events, now)
    windows = await _dedup_windows(session, events)
    last_sent = await _last_sent_by_dedup_key(session, events, windows, now)
    channels = list((await session.scalars(select(ChannelRow))).all())

    results: list[WrittenEvent] = []
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for new in events:
        key = new.idempotency_key
        if key is not None and key in earlier:
            results.append(WrittenEvent(earlier[key], deduplicated=False, replayed=True))
            continue
        dedup = (new.type, new.dedup_key) if new.dedup_key else None
        window = windows.get(new.type)
        deduplicated = bool(
            dedup and window and dedup in last_sent and now - last_sent[dedup] < window
        )
        row = EventRow(
            id=new_id(),
            type=new.type,
            title=new.title,
            detail=new.detail,
            metadata_=new.metadata,
            priority=new.priority,
            dedup_key=new.dedup_key,
            idempotency_key=key,
            source=new.source,
            deduplicated=deduplicated,
            occurred_at=new.occurred_at,
            created_at=now,
        )
        written = WrittenEvent(row, deduplicated=deduplicated)
        results.append(written)
        if key is not None:
            earlier[key] = row
        event_rows.append(_event_values(row))
        if deduplicated:
            continue
        if dedup:
            last_sent[dedup] = now
        for channel in channels:
            status = matches(channel, new, now)
            if status is None:
                continue
            delivery_id = new_id()
            written.delivery_ids.append(delivery_id)
            delivery_rows.append(
                {
                    "id": delivery_id,
                    "event_id": row.id,
                    "channel_id": channel.id,
                    "channel_kind": channel.kind,
                    "status": status,
                    "attempt_count": 0,
                    "next_attempt_at": now if status == DeliveryStatus.PENDING.value else None,
                    "created_at": now,
                }
            )
    if event_rows:
        await session.execute(insert(EventRow), event_rows)
    if delivery_rows:
        await session.execute(insert(DeliveryRow), delivery_rows)
        await notify_new_deliveries(session)
    return results


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


def _event_values(row: EventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "title": row.title,
        "detail": row.detail,
        "metadata_": row.metadata_,
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


async def _last_sent_by_dedup_key(
    session: AsyncSession,
    events: Sequence[NewEvent],
    windows: dict[str, timedelta],
    now: datetime,
) -> dict[tuple[str, str], datetime]:
    wanted = {(e.type, e.dedup_key) for e in events if e.dedup_key and e.type in windows}
    if not wanted:
        return {}
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


@dataclass(slots=True)
class ClaimedDelivery:
    delivery: DeliveryRow
    event: EventRow
    channel: ChannelRow | None
    claim_token: str


_DUE = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)


async def claim_due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    room_per_channel: Callable[[str | None], int],
    full_channels: Collection[str | None] = (),
) -> list[ClaimedDelivery]:
    """Mark up to ``limit`` due deliveries SENDING under a lease and a fresh claim token and
    return them with their event and channel. A SENDING delivery whose lease ran out (its
    worker died) is due again. ``room_per_channel`` caps how many one channel may take, and
    ``full_channels`` (no room at all) are left out of the query itself, so however long
    their backlog, it cannot hide the other channels' deliveries."""
    due = or_(
        and_(col(DeliveryRow.status).in_(_DUE), col(DeliveryRow.next_attempt_at) <= now),
        and_(
            col(DeliveryRow.status) == DeliveryStatus.SENDING.value,
            col(DeliveryRow.lease_expires_at) < now,
        ),
    )
    channel = col(DeliveryRow.channel_id)
    full = [c for c in full_channels if c is not None]
    if full:
        due = and_(due, or_(channel.is_(None), channel.not_in(full)))
    if None in full_channels:
        due = and_(due, channel.is_not(None))
    candidates = (
        select(col(DeliveryRow.id), channel)
        .where(due)
        .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
        .limit(limit * 4)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    taken: dict[str | None, int] = {}
    ids: list[str] = []
    for delivery_id, channel_id in (await session.execute(candidates)).all():
        if len(ids) >= limit:
            break
        if taken.get(channel_id, 0) >= room_per_channel(channel_id):
            continue
        taken[channel_id] = taken.get(channel_id, 0) + 1
        ids.append(delivery_id)
    if not ids:
        return []
    token = new_id()
    await session.execute(
        update(DeliveryRow)
        .where(col(DeliveryRow.id).in_(ids))
        .values(
            status=DeliveryStatus.SENDING.value, lease_expires_at=now + lease, claim_token=token
        )
    )
    rows = await session.execute(
        select(DeliveryRow, EventRow, ChannelRow)
        .join(EventRow, col(EventRow.id) == col(DeliveryRow.event_id))
        .outerjoin(ChannelRow, col(ChannelRow.id) == col(DeliveryRow.channel_id))
        .where(col(DeliveryRow.id).in_(ids))
    )
    return [ClaimedDelivery(d, e, c, token) for d, e, c in rows.all()]


async def renew_leases(
    session: AsyncSession, claims: Sequence[tuple[str, str]], *, until: datetime
) -> None:
    """Extend the lease of deliveries still held under these (id, claim token) pairs."""
    await _update_held_claims(session, claims, lease_expires_at=until)


async def _update_held_claims(
    session: AsyncSession, claims: Sequence[tuple[str, str]], **values: Any
) -> None:
    """One UPDATE (executemany) of the deliveries still held under these claims."""
    if not claims:
        return
    await session.execute(
        update(_DELIVERY)
        .where(_DELIVERY.c.id == bindparam("b_id"), _DELIVERY.c.claim_token == bindparam("b_token"))
        .values(**values),
        [{"b_id": delivery_id, "b_token": token} for delivery_id, token in claims],
    )


async def release_orphaned_sends(session: AsyncSession, *, now: datetime, owner: OutboxLock) -> int:
    """Make every SENDING delivery due now. Only for the holder of the SQLite database's
    outbox lock: it proves their sender died (on PostgreSQL, leases decide)."""
    if not owner.held:
        raise RuntimeError("only the owner of the outbox may release its sends")
    result = await session.execute(
        update(DeliveryRow)
        .where(col(DeliveryRow.status) == DeliveryStatus.SENDING.value)
        .values(status=DeliveryStatus.PENDING.value, next_attempt_at=now, lease_expires_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult, typed Result


@dataclass(slots=True)
class AttemptOutcome:
    delivery_id: str
    claim_token: str
    number: int
    started_at: datetime
    duration_ms: float
    ok: bool
    status_code: int | None
    error: str | None
    new_status: str
    next_attempt_at: datetime | None
    finished_at: datetime
    fallback_retry_at: datetime | None = None
    "When to send again if this outcome cannot be stored; None: it was the last try."


def _held_under(statement: Any) -> Any:
    """``statement`` restricted to deliveries still SENDING under the bound (id, claim
    token): a delivery claimed again by another worker (a new token) is left alone."""
    return statement.where(
        _DELIVERY.c.id == bindparam("b_id"),
        _DELIVERY.c.claim_token == bindparam("b_token"),
        _DELIVERY.c.status == DeliveryStatus.SENDING.value,
    )


# Selected from the delivery row itself, so an attempt is only added under the same
# condition as the status update (and a delivery deleted meanwhile adds none). FOR UPDATE
# keeps a re-claim on PostgreSQL from slipping in between the two statements.
_ADD_ATTEMPT = insert(_ATTEMPT).from_select(
    ["id", "delivery_id", "number", "started_at", "duration_ms", "ok", "status_code", "error"],
    _held_under(
        select(
            bindparam("a_id", type_=String()),
            _DELIVERY.c.id,
            bindparam("b_number", type_=Integer()),
            bindparam("a_started", type_=UTCDateTime()),
            bindparam("a_duration", type_=Float()),
            bindparam("a_ok", type_=Boolean()),
            bindparam("b_code", type_=Integer()),
            bindparam("b_error", type_=String()),
        )
    ).with_for_update(),
)

_FINISH = _held_under(update(_DELIVERY)).values(
    status=bindparam("b_status"),
    attempt_count=bindparam("b_number"),
    next_attempt_at=bindparam("b_next"),
    lease_expires_at=None,
    last_error=bindparam("b_error"),
    last_status_code=bindparam("b_code"),
    delivered_at=bindparam("b_delivered"),
)


async def record_outcomes(session: AsyncSession, outcomes: Sequence[AttemptOutcome]) -> None:
    """Store each attempt and move its delivery on, in the caller's transaction; only
    for the holder of the delivery's current claim."""
    if not outcomes:
        return
    # Two statements for all the outcomes (executemany): each round trip to SQLite's
    # thread costs a turn of a busy event loop.
    rows = [
        {
            "a_id": new_id(),
            "a_started": o.started_at,
            "a_duration": o.duration_ms,
            "a_ok": o.ok,
            "b_id": o.delivery_id,
            "b_token": o.claim_token,
            "b_status": o.new_status,
            "b_number": o.number,
            "b_next": o.next_attempt_at,
            "b_error": o.error,
            "b_code": o.status_code,
            "b_delivered": o.finished_at if o.ok else None,
        }
        for o in outcomes
    ]
    await session.execute(_ADD_ATTEMPT, rows)
    await session.execute(_FINISH, rows)


async def retry_unrecorded(session: AsyncSession, outcome: AttemptOutcome, *, reason: str) -> None:
    """The delivery of an attempt that could not be stored: RETRYING at its fallback time
    with ``reason`` as its error (FAILED after its last try), under the same claim."""
    retry_at = outcome.fallback_retry_at
    await session.execute(
        _held_under(update(_DELIVERY)).values(
            status=(DeliveryStatus.RETRYING if retry_at else DeliveryStatus.FAILED).value,
            attempt_count=outcome.number,
            next_attempt_at=retry_at,
            lease_expires_at=None,
            last_error=reason[:500],
            last_status_code=outcome.status_code,
        ),
        {"b_id": outcome.delivery_id, "b_token": outcome.claim_token},
    )


async def finish_without_attempt(
    session: AsyncSession, delivery_id: str, claim_token: str, *, status: str, reason: str
) -> None:
    """End a claimed delivery without sending it (its channel is gone, off or muted)."""
    await session.execute(
        _held_under(update(_DELIVERY)).values(
            status=status, last_error=reason, lease_expires_at=None, next_attempt_at=None
        ),
        {"b_id": delivery_id, "b_token": claim_token},
    )


async def queue_depth(session: AsyncSession) -> int:
    stmt = select(func.count()).where(
        col(DeliveryRow.status).in_([*_DUE, DeliveryStatus.SENDING.value])
    )
    return int(await session.scalar(stmt.select_from(DeliveryRow)) or 0)


async def release_claims(
    session: AsyncSession, claims: Sequence[tuple[str, str]], *, now: datetime
) -> None:
    """Hand claimed-but-unsent deliveries, (id, claim token) pairs, back: a clean stop."""
    await _update_held_claims(
        session,
        claims,
        status=DeliveryStatus.PENDING.value,
        next_attempt_at=now,
        lease_expires_at=None,
    )
