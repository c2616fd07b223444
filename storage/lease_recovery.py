"""Lease recovery: deliveries left SENDING by a worker that died, handed back to be sent.

A claim already takes over a SENDING delivery whose lease ran out (``storage/claims.py``),
so this sweep is not needed for correctness; it makes the recovery visible (a metric, and
the delivery log shows PENDING rather than a SENDING nobody sends). It is safe beside any
number of workers: it touches only rows whose lease ran out, and on PostgreSQL a row a
worker is claiming at that moment is locked, then re-checked, so a fresh lease is never
taken away. The dead worker's claim token no longer matches a SENDING row, so a late
outcome from it is not recorded over the next attempt.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import DeliveryRow

__all__ = ["recover_expired_leases"]


async def recover_expired_leases(session: AsyncSession, *, now: datetime) -> int:
    """Make every SENDING delivery whose lease ran out before ``now`` due now; how many."""
    result = await session.execute(
        update(DeliveryRow)
        .where(
            col(DeliveryRow.status) == DeliveryStatus.SENDING,
            col(DeliveryRow.lease_expires_at) < now,
        )
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_expires_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult
