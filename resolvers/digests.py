"""Reading digests: a digest by id, the events it holds and the delivery that carries it,
with per-request DataLoaders (``Delivery.digest``, ``Digest.events``, ``Digest.delivery``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry.dataloader import DataLoader

from tocsin.resolvers.context import Context
from tocsin.storage.tables import DeliveryRow, DigestRow, EventRow

__all__ = [
    "carrier_of",
    "delivery_loader",
    "digest_carriers",
    "digest_loader",
    "due_at",
    "events_loader",
]


async def _digests_by_id(ctx: Context, ids: list[str]) -> list[DigestRow | None]:
    async with ctx.db.read() as session:
        rows = (await session.scalars(select(DigestRow).where(col(DigestRow.id).in_(ids)))).all()
    by_id = {row.id: row for row in rows}
    return [by_id.get(i) for i in ids]


async def _events_by_digest(ctx: Context, ids: list[str]) -> list[list[EventRow]]:
    """Each digest's events, oldest first: its member deliveries' (not its carrier's)."""
    stmt = (
        select(col(DeliveryRow.digest_id), EventRow)
        .join(EventRow, col(EventRow.id) == col(DeliveryRow.event_id))
        .join(DigestRow, col(DigestRow.id) == col(DeliveryRow.digest_id))
        .where(
            col(DeliveryRow.digest_id).in_(ids),
            or_(
                col(DigestRow.delivery_id).is_(None),
                col(DeliveryRow.id) != col(DigestRow.delivery_id),
            ),
        )
        .order_by(col(EventRow.created_at), col(EventRow.id))
    )
    async with ctx.db.read() as session:
        rows = (await session.execute(stmt)).all()
    grouped: dict[str, list[EventRow]] = defaultdict(list)
    for digest_id, event in rows:
        if digest_id is not None:
            grouped[digest_id].append(event)
    return [grouped[i] for i in ids]


async def _deliveries_by_id(ctx: Context, ids: list[str]) -> list[DeliveryRow | None]:
    async with ctx.db.read() as session:
        stmt = select(DeliveryRow).where(col(DeliveryRow.id).in_(ids))
        rows = (await session.scalars(stmt)).all()
    by_id = {row.id: row for row in rows}
    return [by_id.get(i) for i in ids]


def digest_loader(ctx: Context) -> DataLoader[str, DigestRow | None]:
    return ctx.loader("digest", lambda: DataLoader(lambda k: _digests_by_id(ctx, list(k))))


def events_loader(ctx: Context) -> DataLoader[str, list[EventRow]]:
    return ctx.loader(
        "digest_events", lambda: DataLoader(lambda k: _events_by_digest(ctx, list(k)))
    )


def delivery_loader(ctx: Context) -> DataLoader[str, DeliveryRow | None]:
    return ctx.loader(
        "delivery_by_id", lambda: DataLoader(lambda k: _deliveries_by_id(ctx, list(k)))
    )


def due_at(ctx: Context, row: DigestRow) -> datetime:
    """When the digest was closed, or (open) when its period ends."""
    if row.period_end is not None:
        return row.period_end
    seconds = ctx.settings.digest_intervals.get(row.priority, 0)
    return row.period_start + timedelta(seconds=seconds)


def digest_carriers() -> Any:
    """The ids of the deliveries that carry a digest (a subquery)."""
    return select(col(DigestRow.delivery_id)).where(col(DigestRow.delivery_id).is_not(None))


async def carrier_of(session: AsyncSession, row: DeliveryRow) -> DeliveryRow:
    """The delivery that sends ``row``: a digest's member is sent by its digest's delivery
    (retrying the member retries that one); any other delivery by itself."""
    if row.digest_id is None:
        return row
    digest = await session.get(DigestRow, row.digest_id)
    if digest is None or digest.delivery_id in (None, row.id):
        return row
    carrier = await session.get(DeliveryRow, digest.delivery_id, with_for_update=True)
    return carrier or row
