"""Digests as rows: a DIGEST channel's MEDIUM, LOW and INFO events wait in the channel's
one open digest of their priority, and a due digest is closed into one delivery.

Life of a digest::

    OPEN ──first event + the priority's interval──▶ CLOSED (its own delivery, PENDING)
    member deliveries: BATCHED ──the digest's delivery ends──▶ its status (same transaction)

At most one digest per (channel, priority) is OPEN: a partial unique index says so, for any
number of writers. Joining (``join_digests``, in the emit's transaction) increments the open
digest's count with an UPDATE, which on PostgreSQL holds the row until the emit commits;
closing (``close_due_digests``) takes only digests nobody holds (SKIP LOCKED) and closes
them with UPDATE ... WHERE status = 'OPEN'. So an event either joined before the close and
is in it, or finds the digest closed and opens the next: it is in exactly one digest. SQLite
has one writer at a time already.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from tocsin.storage.enums import DeliveryStatus, DigestStatus
from tocsin.storage.tables import DeliveryRow, DigestRow, EventRow
from tocsin.storage.types import new_id
from tocsin.storage.wakeup import notify_new_deliveries

__all__ = [
    "ClosedDigest",
    "DigestMembers",
    "close_due_digests",
    "digest_members",
    "join_digests",
    "next_due",
    "record_parts_sent",
    "settle_members",
]

_DELIVERY = DeliveryRow.metadata.tables["delivery"]
_DIGEST = DigestRow.metadata.tables["digest"]
_OPEN = DigestStatus.OPEN.value


async def join_digests(
    session: AsyncSession, deliveries: Sequence[dict[str, Any]], *, priorities: Mapping[str, str]
) -> None:
    """Put each BATCHED delivery row (values about to be inserted) in its channel's open
    digest of its event's priority (``priorities``: event id -> priority), opening one when
    there is none; sets every row's ``digest_id`` (None outside digests)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for values in deliveries:
        values.setdefault("digest_id", None)  # every row of an executemany has every key
        if values["status"] == DeliveryStatus.BATCHED:
            groups[(values["channel_id"], priorities[values["event_id"]])].append(values)
    # One order for every writer, so that two emits sharing digests cannot deadlock.
    for channel_id, priority in sorted(groups):
        members = groups[(channel_id, priority)]
        now = members[0]["created_at"]
        digest_id = await _join_one(
            session, channel_id, members[0]["channel_kind"], priority, len(members), now
        )
        for values in members:
            values["digest_id"] = digest_id


async def _join_one(
    session: AsyncSession, channel_id: str, kind: str, priority: str, count: int, now: datetime
) -> str:
    """The id of the open digest that now counts ``count`` more events."""
    for _ in range(5):
        joined = await session.execute(
            update(_DIGEST)
            .where(
                _DIGEST.c.channel_id == channel_id,
                _DIGEST.c.priority == priority,
                _DIGEST.c.status == _OPEN,
            )
            .values(event_count=_DIGEST.c.event_count + count)
            .returning(_DIGEST.c.id)
        )
        found = joined.scalar()
        if found is not None:
            return str(found)
        opening = _open_digest(session, channel_id, kind, priority, count, now)
        found = (await session.execute(opening)).scalar()
        if found is not None:
            return str(found)
        # Another writer opened it between the two statements: join that one.
    raise RuntimeError(f"could not open or join the {priority} digest of channel {channel_id}")


def _open_digest(
    session: AsyncSession, channel_id: str, kind: str, priority: str, count: int, now: datetime
) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id of a new open digest."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {
        "id": new_id(),
        "channel_id": channel_id,
        "channel_kind": kind,
        "priority": priority,
        "status": _OPEN,
        "event_count": count,
        "period_start": now,
        "parts_sent": 0,
    }
    return (
        dialect.insert(_DIGEST)
        .values(values)
        .on_conflict_do_nothing(
            index_elements=["channel_id", "priority"], index_where=_DIGEST.c.status == _OPEN
        )
        .returning(_DIGEST.c.id)
    )


def _due(now: datetime, intervals: Mapping[str, int]) -> Any:
    """Open digests whose period (its priority's interval from the first event) is over."""
    return and_(
        _DIGEST.c.status == _OPEN,
        or_(
            *(
                and_(
                    _DIGEST.c.priority == priority,
                    _DIGEST.c.period_start <= now - timedelta(seconds=seconds),
                )
                for priority, seconds in intervals.items()
            )
        ),
    )


@dataclass(frozen=True, slots=True)
class ClosedDigest:
    digest_id: str
    delivery_id: str | None
    "None when no member was left (their events were deleted): nothing to send."


async def close_due_digests(
    session: AsyncSession, *, now: datetime, intervals: Mapping[str, int]
) -> list[ClosedDigest]:
    """Close every due digest nobody else holds into one PENDING delivery each, in the
    caller's transaction; of several processes, each digest is closed by exactly one."""
    candidates = select(_DIGEST.c.id).where(_due(now, intervals)).limit(500)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    closed = await session.execute(
        update(_DIGEST)
        .where(_DIGEST.c.id.in_(ids), _DIGEST.c.status == _OPEN)
        .values(status=DigestStatus.CLOSED.value, period_end=now)
        .returning(_DIGEST.c.id, _DIGEST.c.channel_id)
    )
    channels: dict[str, str | None] = {str(i): c for i, c in closed.all()}
    if not channels:
        return []
    oldest = await _oldest_members(session, list(channels))
    carriers = [
        _carrier(digest_id, channels[digest_id], oldest[digest_id], now)
        for digest_id in channels
        if digest_id in oldest
    ]
    if carriers:
        await session.execute(insert(DeliveryRow), carriers)
        await session.execute(
            update(_DIGEST)
            .where(_DIGEST.c.id == bindparam("b_id"))
            .values(delivery_id=bindparam("b_delivery")),
            [{"b_id": c["digest_id"], "b_delivery": c["id"]} for c in carriers],
        )
        await notify_new_deliveries(session)
    sent = {c["digest_id"]: c["id"] for c in carriers}
    return [ClosedDigest(digest_id, sent.get(digest_id)) for digest_id in channels]


def _carrier(
    digest_id: str, channel_id: str | None, oldest: tuple[str, str], now: datetime
) -> dict[str, Any]:
    """The digest's own delivery: its oldest member's event (every delivery has one)."""
    event_id, kind = oldest
    return {
        "id": new_id(),
        "event_id": event_id,
        "channel_id": channel_id,
        "channel_kind": kind,
        "status": DeliveryStatus.PENDING.value,
        "attempt_count": 0,
        "next_attempt_at": now,
        "created_at": now,
        "digest_id": digest_id,
    }


async def _oldest_members(
    session: AsyncSession, digest_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """digest id -> (event id, channel kind) of its oldest member."""
    rows = await session.execute(
        select(col(DeliveryRow.digest_id), col(DeliveryRow.event_id), col(DeliveryRow.channel_kind))
        .join(EventRow, col(EventRow.id) == col(DeliveryRow.event_id))
        .where(
            col(DeliveryRow.digest_id).in_(digest_ids),
            col(DeliveryRow.status) == DeliveryStatus.BATCHED,
        )
        .order_by(col(EventRow.created_at).desc(), col(EventRow.id).desc())
    )
    # Newest first, so that the oldest of each digest is the one written last.
    return {str(digest_id): (event_id, kind) for digest_id, event_id, kind in rows}


async def next_due(session: AsyncSession, *, intervals: Mapping[str, int]) -> datetime | None:
    """When the first open digest falls due; None when none is open."""
    rows = await session.execute(
        select(_DIGEST.c.priority, func.min(_DIGEST.c.period_start))
        .where(_DIGEST.c.status == _OPEN)
        .group_by(_DIGEST.c.priority)
    )
    due = [
        start + timedelta(seconds=intervals[priority])
        for priority, start in rows
        if priority in intervals and start is not None
    ]
    return min(due, default=None)


@dataclass(frozen=True, slots=True)
class DigestMembers:
    """A closed digest as its delivery sends it: members oldest first."""

    digest: DigestRow
    members: list[tuple[DeliveryRow, EventRow]]


async def digest_members(
    session: AsyncSession, *, digest_id: str, delivery_id: str
) -> DigestMembers | None:
    """The digest ``delivery_id`` carries, with its members; None if it carries none."""
    digest = await session.scalar(
        select(DigestRow).where(
            col(DigestRow.id) == digest_id, col(DigestRow.delivery_id) == delivery_id
        )
    )
    if digest is None:
        return None
    rows = await session.execute(
        select(DeliveryRow, EventRow)
        .join(EventRow, col(EventRow.id) == col(DeliveryRow.event_id))
        .where(col(DeliveryRow.digest_id) == digest_id, col(DeliveryRow.id) != delivery_id)
        .order_by(col(EventRow.created_at), col(EventRow.id))
    )
    return DigestMembers(digest, [(d, e) for d, e in rows])


async def record_parts_sent(
    session: AsyncSession, *, digest_id: str, delivery_id: str, claim_token: str, parts: int
) -> None:
    """Store how many of the digest's messages went out, while its delivery is still held
    under ``claim_token`` (a later claim's worker keeps its own count)."""
    held = exists().where(
        _DELIVERY.c.id == delivery_id,
        _DELIVERY.c.claim_token == claim_token,
        _DELIVERY.c.status == DeliveryStatus.SENDING,
    )
    await session.execute(
        update(_DIGEST)
        .where(_DIGEST.c.id == digest_id, _DIGEST.c.delivery_id == delivery_id, held)
        .values(parts_sent=parts)
    )


_FINAL = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)


async def settle_members(session: AsyncSession, carrier_ids: Sequence[str]) -> None:
    """Give the members of each of these digest deliveries their carrier's status once it
    is final (DELIVERED, FAILED, SUPPRESSED), in the caller's transaction, after the
    carrier's own update; a delivery that carries no digest has no members."""
    if not carrier_ids:
        return
    carrier = aliased(DeliveryRow, name="carrier")

    def of_carrier(column: Any) -> Any:
        return select(column).where(col(carrier.id) == bindparam("c_id")).scalar_subquery()

    status = of_carrier(col(carrier.status))
    await session.execute(
        update(_DELIVERY)
        .where(
            _DELIVERY.c.digest_id == of_carrier(col(carrier.digest_id)),
            _DELIVERY.c.id != bindparam("c_id"),
            status.in_(_FINAL),
        )
        .values(status=status, delivered_at=of_carrier(col(carrier.delivered_at))),
        [{"c_id": carrier_id} for carrier_id in carrier_ids],
    )
