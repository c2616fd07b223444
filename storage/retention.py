"""Retention: finished events older than ``TOCSIN_RETENTION_DAYS`` are deleted with their
deliveries and attempts, a small batch per transaction, so no lock is held for long.

An event is finished when every one of its deliveries is DELIVERED, FAILED or SUPPRESSED
(an event routed to no channel has none, and is finished too). Anything still PENDING,
SENDING or RETRYING keeps its event, whatever its age; the audit log is never pruned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import DeliveryAttemptRow, DeliveryRow, EventRow

__all__ = ["FINISHED", "Pruned", "prune_batch", "prune_finished"]

FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)
BATCH = 500
"Events per transaction: each batch locks at most these rows and their deliveries."
PAUSE = 0.05
"Seconds between batches, so the emit path and the workers get the database in between."


class _Writes(Protocol):
    def write(self) -> Any: ...


@dataclass(slots=True)
class Pruned:
    events: int = 0
    deliveries: int = 0
    attempts: int = 0

    def add(self, other: Pruned) -> None:
        self.events += other.events
        self.deliveries += other.deliveries
        self.attempts += other.attempts


def _finished_before(before: datetime) -> Any:
    """Events created before ``before`` with no delivery still to send."""
    unfinished = (
        select(col(DeliveryRow.id))
        .where(col(DeliveryRow.event_id) == col(EventRow.id))
        .where(col(DeliveryRow.status).not_in(FINISHED))
    )
    return (col(EventRow.created_at) < before) & ~exists(unfinished)


async def prune_batch(session: AsyncSession, *, before: datetime, limit: int = BATCH) -> Pruned:
    """Delete up to ``limit`` finished events created before ``before``, with their
    deliveries and attempts, in the caller's transaction."""
    found = select(col(EventRow.id)).where(_finished_before(before))
    ids: Sequence[str] = (
        await session.scalars(found.order_by(col(EventRow.created_at)).limit(limit))
    ).all()
    if not ids:
        return Pruned()
    # Each statement checks again that the event is still finished: a retryDelivery that
    # committed since the select keeps its event (and what is left of its history).
    kept = select(col(EventRow.id)).where(col(EventRow.id).in_(ids), _finished_before(before))
    deliveries = select(col(DeliveryRow.id)).where(col(DeliveryRow.event_id).in_(kept))
    attempts = await session.execute(
        delete(DeliveryAttemptRow).where(col(DeliveryAttemptRow.delivery_id).in_(deliveries))
    )
    removed = await session.execute(delete(DeliveryRow).where(col(DeliveryRow.event_id).in_(kept)))
    events = await session.execute(
        delete(EventRow).where(col(EventRow.id).in_(ids), _finished_before(before))
    )
    return Pruned(_count(events), _count(removed), _count(attempts))


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


async def prune_finished(
    db: _Writes, *, before: datetime, batch: int = BATCH, pause: float = PAUSE
) -> Pruned:
    """Prune batch after batch, one transaction each, until none is left."""
    total = Pruned()
    while True:
        async with db.write() as session:
            pruned = await prune_batch(session, before=before, limit=batch)
        total.add(pruned)
        if pruned.events < batch:
            return total
        await asyncio.sleep(pause)
