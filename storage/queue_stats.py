"""Figures about the outbox for operators' metrics: how much waits, and for how long."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import DeliveryRow

__all__ = ["oldest_due_age"]


async def oldest_due_age(session: AsyncSession, *, now: datetime) -> float:
    """Seconds the longest-waiting due delivery (PENDING or RETRYING) has been due; 0 when
    none is due. Uses the (status, next_attempt_at) index."""
    due = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
    stmt = select(func.min(col(DeliveryRow.next_attempt_at))).where(
        col(DeliveryRow.status).in_(due), col(DeliveryRow.next_attempt_at) <= now
    )
    oldest = await session.scalar(stmt)
    if oldest is None:
        return 0.0
    return max((now - oldest).total_seconds(), 0.0)
