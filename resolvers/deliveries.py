"""Reading the delivery log: events, deliveries, attempts, with per-request DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlmodel import col
from strawberry.dataloader import DataLoader

from tocsin.channels.registry import ChannelKind
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.digests import carrier_of, digest_carriers
from tocsin.resolvers.pagination import Page, paginate
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import ChannelRow, DeliveryAttemptRow, DeliveryRow, EventRow
from tocsin.storage.types import utcnow
from tocsin.storage.wakeup import notify_new_deliveries

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    ctx: Context, name: str, load: Callable[[Context, list[str]], Awaitable[Sequence[Any]]]
) -> DataLoader[str, Any]:
    return ctx.loader(name, lambda: DataLoader(lambda keys: load(ctx, list(keys))))


async def _events_by_id(ctx: Context, ids: list[str]) -> list[EventRow | None]:
    async with ctx.db.read() as session:
        rows = (await session.scalars(select(EventRow).where(col(EventRow.id).in_(ids)))).all()
    by_id = {row.id: row for row in rows}
    return [by_id.get(i) for i in ids]


async def _channels_by_id(ctx: Context, ids: list[str]) -> list[ChannelRow | None]:
    async with ctx.db.read() as session:
        rows = (await session.scalars(select(ChannelRow).where(col(ChannelRow.id).in_(ids)))).all()
    by_id = {row.id: row for row in rows}
    return [by_id.get(i) for i in ids]


async def _attempts_by_delivery(ctx: Context, ids: list[str]) -> list[list[DeliveryAttemptRow]]:
    stmt = (
        select(DeliveryAttemptRow)
        .where(col(DeliveryAttemptRow.delivery_id).in_(ids))
        .order_by(col(DeliveryAttemptRow.number))
    )
    async with ctx.db.read() as session:
        rows = (await session.scalars(stmt)).all()
    grouped: dict[str, list[DeliveryAttemptRow]] = defaultdict(list)
    for row in rows:
        grouped[row.delivery_id].append(row)
    return [grouped[i] for i in ids]


async def _deliveries_by_event(ctx: Context, ids: list[str]) -> list[list[DeliveryRow]]:
    stmt = (
        select(DeliveryRow).where(col(DeliveryRow.event_id).in_(ids)).order_by(col(DeliveryRow.id))
    )
    async with ctx.db.read() as session:
        rows = (await session.scalars(stmt)).all()
    grouped: dict[str, list[DeliveryRow]] = defaultdict(list)
    for row in rows:
        grouped[row.event_id].append(row)
    return [grouped[i] for i in ids]


async def _last_delivery_by_channel(ctx: Context, ids: list[str]) -> list[DeliveryRow | None]:
    newest = (
        select(col(DeliveryRow.channel_id), func.max(col(DeliveryRow.id)).label("id"))
        .where(col(DeliveryRow.channel_id).in_(ids))
        .group_by(col(DeliveryRow.channel_id))
        .subquery()
    )
    stmt = select(DeliveryRow).join(newest, col(DeliveryRow.id) == newest.c.id)
    async with ctx.db.read() as session:
        rows = (await session.scalars(stmt)).all()
    by_channel = {row.channel_id: row for row in rows}
    return [by_channel.get(i) for i in ids]


def event_loader(ctx: Context) -> DataLoader[str, EventRow]:
    return _loader(ctx, "event", _events_by_id)


def channel_loader(ctx: Context) -> DataLoader[str, ChannelRow | None]:
    return _loader(ctx, "channel", _channels_by_id)


def attempts_loader(ctx: Context) -> DataLoader[str, list[DeliveryAttemptRow]]:
    return _loader(ctx, "attempts", _attempts_by_delivery)


def deliveries_by_event_loader(ctx: Context) -> DataLoader[str, list[DeliveryRow]]:
    return _loader(ctx, "deliveries_by_event", _deliveries_by_event)


def last_delivery_loader(ctx: Context) -> DataLoader[str, DeliveryRow | None]:
    return _loader(ctx, "last_delivery", _last_delivery_by_channel)


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    event_type: str | None = None
    status: DeliveryStatus | None = None
    channel_id: str | None = None
    kind: ChannelKind | None = None
    since: datetime | None = None
    until: datetime | None = None
    digest: bool | None = None
    "True: only deliveries that carry a digest; False: all the others."


async def list_deliveries(
    ctx: Context, *, first: int, after: str | None, query: DeliveryQuery
) -> Page[DeliveryRow]:
    stmt = select(DeliveryRow)
    if query.event_type:
        stmt = stmt.join(EventRow, col(EventRow.id) == col(DeliveryRow.event_id)).where(
            col(EventRow.type) == query.event_type
        )
    if query.status is not None:
        stmt = stmt.where(col(DeliveryRow.status) == query.status.value)
    if query.channel_id:
        stmt = stmt.where(col(DeliveryRow.channel_id) == query.channel_id)
    if query.kind is not None:
        stmt = stmt.where(col(DeliveryRow.channel_kind) == query.kind.value)
    if query.since is not None:
        stmt = stmt.where(col(DeliveryRow.created_at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(DeliveryRow.created_at) < query.until)
    if query.digest is not None:
        carried = col(DeliveryRow.id).in_(digest_carriers())
        stmt = stmt.where(carried if query.digest else ~carried)
    async with ctx.db.read() as session:
        return await paginate(session, stmt, DeliveryRow.id, first=first, after=after)


async def list_events(
    ctx: Context, *, first: int, after: str | None, event_type: str | None
) -> Page[EventRow]:
    stmt = select(EventRow)
    if event_type:
        stmt = stmt.where(col(EventRow.type) == event_type)
    async with ctx.db.read() as session:
        return await paginate(session, stmt, EventRow.id, first=first, after=after)


async def get_event(ctx: Context, event_id: str) -> EventRow | None:
    async with ctx.db.read() as session:
        return await session.get(EventRow, event_id)


async def delivery_counts(ctx: Context) -> dict[str, int]:
    stmt = (
        select(col(DeliveryRow.status), func.count())
        .where(
            col(DeliveryRow.status).in_(
                [
                    DeliveryStatus.PENDING.value,
                    DeliveryStatus.SENDING.value,
                    DeliveryStatus.RETRYING.value,
                    DeliveryStatus.FAILED.value,
                ]
            )
        )
        .group_by(col(DeliveryRow.status))
    )
    async with ctx.db.read() as session:
        return {status: int(count) for status, count in (await session.execute(stmt)).all()}


async def retry_delivery(ctx: Context, delivery_id: str) -> DeliveryRow | None:
    """Put a FAILED delivery back in the queue with a fresh retry budget."""
    async with ctx.db.write() as session:
        # FOR UPDATE: two retries at once must not both see FAILED (and audit twice).
        row = await session.get(DeliveryRow, delivery_id, with_for_update=True)
        if row is None:
            return None
        row = await carrier_of(session, row)
        if row.status == DeliveryStatus.FAILED.value:
            row.status = DeliveryStatus.PENDING.value
            row.next_attempt_at = utcnow()
            row.cycle_start = row.attempt_count
            await notify_new_deliveries(session)
            record_audit(
                session,
                actor=ctx.principal.name,
                action="delivery.retry",
                target=row.id,
                details={"event_id": row.event_id, "channel_id": row.channel_id},
            )
    ctx.services.wake_worker()
    return row
