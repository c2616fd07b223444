"""Claims: workers take due deliveries under a lease and a claim token, and only the
holder of a delivery's current claim may record how its attempt went.

Life of a delivery::

    PENDING ──claim──▶ SENDING ──ok──▶ DELIVERED
       ▲                  │ ├──permanent failure / retries spent──▶ FAILED
       │                  │ └──transient failure──▶ RETRYING (next_attempt_at)
       └── lease expired (crash) or retryDelivery ◀──────┘

``storage/ingest.py`` writes deliveries PENDING (or SUPPRESSED); a claimed delivery whose
channel is gone, off or muted is finished without an attempt (FAILED or SUPPRESSED).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import TableClause
from sqlmodel import col

from tocsin.storage.digests import settle_members
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.outbox_lock import OutboxLock
from tocsin.storage.prepared import Prepared
from tocsin.storage.tables import ChannelRow, DeliveryAttemptRow, DeliveryRow, EventRow
from tocsin.storage.types import UTCDateTime, new_id

__all__ = [
    "AttemptOutcome",
    "ClaimedDelivery",
    "claim_due_deliveries",
    "finish_without_attempt",
    "queue_depth",
    "record_outcomes",
    "release_claims",
    "release_orphaned_sends",
    "renew_leases",
    "retry_unrecorded",
]

_DELIVERY = DeliveryRow.metadata.tables["delivery"]
"The delivery table, for executemany statements keyed by bound parameters."
_ATTEMPT = DeliveryAttemptRow.metadata.tables["delivery_attempt"]


@dataclass(frozen=True, slots=True)
class QueuedDelivery:
    """What an attempt needs of a claimed delivery's row (read as plain columns: a claim
    loads no ORM object of its deliveries and events)."""

    id: str
    channel_id: str | None
    attempt_count: int
    cycle_start: int
    digest_id: str | None


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """What an attempt needs of a claimed delivery's event."""

    id: str
    type: str
    priority: str
    title: str
    detail: str | None
    metadata_: dict[str, Any]
    occurred_at: datetime


@dataclass(slots=True)
class ClaimedDelivery:
    delivery: QueuedDelivery
    event: QueuedEvent
    channel: ChannelRow | None
    "The channel as it is now (an ORM row: one object per channel, however many claims)."
    claim_token: str


_DUE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


async def claim_due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    room_per_channel: Callable[[str | None], int],
    full_channels: Collection[str | None] = (),
    take_over_expired: bool = True,
) -> list[ClaimedDelivery]:
    """Mark up to ``limit`` due deliveries SENDING under a lease and a fresh claim token and
    return them with their event and channel. ``room_per_channel`` caps how many one channel
    may take, and ``full_channels`` (no room at all) are left out of the query itself, so
    however long their backlog, it cannot hide the other channels' deliveries.

    ``take_over_expired``: also take SENDING deliveries whose lease ran out (their worker
    died), first. A worker asks for them now and then rather than every turn: the queue's
    own query is then one walk of an index from its front, however long the backlog."""
    found: list[Any] = []
    if take_over_expired:
        found += (await session.execute(_locked(session, _expired(now, limit)))).all()
    front = _queue_front(now, limit, full_channels)
    found += (await session.execute(_locked(session, front))).all()
    ids = _within_room(found, limit, room_per_channel)
    if not ids:
        return []
    token = new_id()
    await session.execute(_CLAIM, {"ids": ids, "lease": now + lease, "token": token})
    rows = (await session.execute(_CLAIMED_AMONG, {"ids": ids})).all()
    # Each channel is read once, not once per delivery: a turn's claims are mostly a few
    # channels' backlogs, and a channel row is a dozen columns to decode (JSON, datetimes).
    wanted = {row[1] for row in rows if row[1] is not None}
    channels: dict[str, ChannelRow] = {}
    if wanted:
        found_channels = await session.scalars(
            select(ChannelRow).where(col(ChannelRow.id).in_(wanted))
        )
        channels = {channel.id: channel for channel in found_channels}
    return [
        ClaimedDelivery(
            QueuedDelivery(*row[:5]), QueuedEvent(*row[5:12]), channels.get(row[1]), token
        )
        for row in rows
    ]


_EVENT = EventRow.metadata.tables["event"]
_CLAIMED = select(
    *(_DELIVERY.c[f.name] for f in fields(QueuedDelivery)),
    *(_EVENT.c[f.name.rstrip("_")] for f in fields(QueuedEvent)),  # metadata_: "metadata"
).select_from(_DELIVERY.join(_EVENT, _EVENT.c.id == _DELIVERY.c.event_id))
"Claimed deliveries with their event, as columns (their channels are read apart)."
_AMONG = _DELIVERY.c.id.in_(bindparam("ids", expanding=True))
"The deliveries a claim takes: built once, so each turn binds a list (no new statement)."
_CLAIM = (
    update(_DELIVERY)
    .where(_AMONG)
    .values(
        status=DeliveryStatus.SENDING,
        lease_expires_at=bindparam("lease", type_=UTCDateTime()),
        claim_token=bindparam("token"),
    )
)
_CLAIMED_AMONG = _CLAIMED.where(_AMONG)


class _Queue(TableClause):
    """The delivery table read through ``ix_delivery_queue``: on SQLite the query names the
    index (``INDEXED BY``): without statistics its planner would rather take
    ``ix_delivery_due`` and sort every due delivery it finds. SQLite refuses a query the
    index cannot serve, so the index cannot silently stop being used."""

    inherit_cache = True


@compiles(_Queue)
def _queue_anywhere(element: _Queue, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_table(element, **kw))


@compiles(_Queue, "sqlite")
def _queue_on_sqlite(element: _Queue, compiler: Any, **kw: Any) -> str:
    sql = str(compiler.visit_table(element, **kw))
    return f"{sql} INDEXED BY ix_delivery_queue" if kw.get("asfrom") else sql


_QUEUE = _Queue(
    "delivery",
    column("id", String()),
    column("channel_id", String()),
    column("next_attempt_at", UTCDateTime()),
)
_QUEUED = text("delivery.status IN ('PENDING', 'RETRYING')")
"""The queue index's condition, written out as literals: SQLite and PostgreSQL use a
partial index only for a query whose WHERE states its condition."""


def _queue_front(now: datetime, limit: int, full_channels: Collection[str | None]) -> Any:
    """(id, channel id) of the deliveries due first, in queue order, not of a full channel:
    read in order from ``ix_delivery_queue`` and cut at ``limit * 4`` (no sort of the
    backlog). Candidates beyond a channel's room are dropped by ``_within_room``."""
    channel = _QUEUE.c.channel_id
    due = and_(_QUEUED, _QUEUE.c.next_attempt_at <= now)
    full = [c for c in full_channels if c is not None]
    if full:
        due = and_(due, or_(channel.is_(None), channel.not_in(full)))
    if None in full_channels:
        due = and_(due, channel.is_not(None))
    return (
        select(_QUEUE.c.id, channel)
        .where(due)
        .order_by(_QUEUE.c.next_attempt_at, _QUEUE.c.id)
        .limit(limit * 4)
    )


def _expired(now: datetime, limit: int) -> Any:
    """(id, channel id) of SENDING deliveries whose lease ran out (``ix_delivery_due``)."""
    return (
        select(col(DeliveryRow.id), col(DeliveryRow.channel_id))
        .where(
            col(DeliveryRow.status) == DeliveryStatus.SENDING,
            col(DeliveryRow.lease_expires_at) < now,
        )
        .order_by(col(DeliveryRow.lease_expires_at))
        .limit(limit)
    )


def _locked(session: AsyncSession, candidates: Any) -> Any:
    """On PostgreSQL, candidates another worker is claiming are skipped, not waited for."""
    if session.get_bind().dialect.name == "postgresql":
        return candidates.with_for_update(skip_locked=True)
    return candidates


def _within_room(
    candidates: Sequence[Any], limit: int, room_per_channel: Callable[[str | None], int]
) -> list[str]:
    """Up to ``limit`` of the (id, channel id) candidates, in order, within each channel's room."""
    room: dict[str | None, int] = {}
    "What each channel met so far may still take (asked once per channel)."
    ids: list[str] = []
    for delivery_id, channel_id in candidates:
        left = room.get(channel_id)
        if left is None:
            left = room[channel_id] = room_per_channel(channel_id)
        if left <= 0:
            continue
        room[channel_id] = left - 1
        ids.append(delivery_id)
        if len(ids) >= limit:
            break
    return ids


async def renew_leases(
    session: AsyncSession, claims: Sequence[tuple[str, str]], *, until: datetime
) -> None:
    """Extend the lease of deliveries still held under these (id, claim token) pairs."""
    await _update_held_claims(session, claims, lease_expires_at=until)


async def release_claims(
    session: AsyncSession, claims: Sequence[tuple[str, str]], *, now: datetime
) -> None:
    """Hand claimed-but-unsent deliveries, (id, claim token) pairs, back: a clean stop."""
    await _update_held_claims(
        session,
        claims,
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        lease_expires_at=None,
    )


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
        .where(col(DeliveryRow.status) == DeliveryStatus.SENDING)
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_expires_at=None)
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
    digest_id: str | None = None
    "The digest this delivery carries: its members take its final status."


def _held_under(statement: Any) -> Any:
    """``statement`` restricted to deliveries still SENDING under the bound (id, claim
    token): a delivery claimed again by another worker (a new token) is left alone."""
    return statement.where(
        _DELIVERY.c.id == bindparam("b_id"),
        _DELIVERY.c.claim_token == bindparam("b_token"),
        _DELIVERY.c.status == DeliveryStatus.SENDING,
    )


# Selected from the delivery row itself, so an attempt is only added under the same
# condition as the status update (and a delivery deleted meanwhile adds none). FOR UPDATE
# keeps a re-claim on PostgreSQL from slipping in between the two statements.
_ADD_ATTEMPT = Prepared(
    insert(_ATTEMPT).from_select(
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
)

_FINISH = Prepared(
    _held_under(update(_DELIVERY)).values(
        status=bindparam("b_status"),
        attempt_count=bindparam("b_number"),
        next_attempt_at=bindparam("b_next"),
        lease_expires_at=None,
        last_error=bindparam("b_error"),
        last_status_code=bindparam("b_code"),
        delivered_at=bindparam("b_delivered"),
    )
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
    await _ADD_ATTEMPT.run_many(session, rows)
    await _FINISH.run_many(session, rows)
    await settle_members(session, [o.delivery_id for o in outcomes if o.digest_id])


async def retry_unrecorded(session: AsyncSession, outcome: AttemptOutcome, *, reason: str) -> None:
    """The delivery of an attempt that could not be stored: RETRYING at its fallback time
    with ``reason`` as its error (FAILED after its last try), under the same claim."""
    retry_at = outcome.fallback_retry_at
    await session.execute(
        _held_under(update(_DELIVERY)).values(
            status=DeliveryStatus.RETRYING if retry_at else DeliveryStatus.FAILED,
            attempt_count=outcome.number,
            next_attempt_at=retry_at,
            lease_expires_at=None,
            last_error=reason[:500],
            last_status_code=outcome.status_code,
        ),
        {"b_id": outcome.delivery_id, "b_token": outcome.claim_token},
    )
    if outcome.digest_id and not retry_at:
        await settle_members(session, [outcome.delivery_id])


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
    await settle_members(session, [delivery_id])  # rare: whatever it carries ends with it


async def queue_depth(session: AsyncSession) -> int:
    """Deliveries waiting or being sent (due or not), for the queue depth gauge."""
    stmt = select(func.count()).where(col(DeliveryRow.status).in_([*_DUE, DeliveryStatus.SENDING]))
    return int(await session.scalar(stmt.select_from(DeliveryRow)) or 0)
