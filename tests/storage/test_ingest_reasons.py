"""A SUPPRESSED row keeps routing's sentence; one too long for delivery.reason is cut to
its 500 characters rather than fail the emit (and every other emit of its transaction)."""

from __future__ import annotations

from sqlalchemy import select

from tocsin.settings import Settings
from tocsin.storage.database import Database
from tocsin.storage.enums import RouteOutcome
from tocsin.storage.ingest import MAX_REASON, Decision, NewEvent, write_events
from tocsin.storage.tables import ChannelRow, DeliveryRow
from tocsin.storage.types import utcnow


def _event(title: str) -> NewEvent:
    return NewEvent(
        type="test",
        title=title,
        detail=None,
        metadata={},
        priority="INFO",
        dedup_key=None,
        idempotency_key=None,
        source="test",
        occurred_at=utcnow(),
    )


async def test_a_long_reason_is_cut_and_the_batch_is_stored(settings: Settings) -> None:
    db = Database.from_settings(settings)
    reasons = {"long": "x" * (MAX_REASON + 100), "short": "muted until 2036-12-04T09:00Z"}
    try:
        async with db.write() as session:
            session.add(ChannelRow(kind="WEBHOOK", name="hook"))
        async with db.write() as session:
            await write_events(
                session,
                [_event("long"), _event("short")],
                now=utcnow(),
                matches=lambda _c, new, _n: Decision(RouteOutcome.SUPPRESSED, reasons[new.title]),
            )
        async with db.read() as session:
            stored = sorted((await session.scalars(select(DeliveryRow.reason))).all(), key=len)
    finally:
        await db.dispose()
    assert stored == [reasons["short"], "x" * MAX_REASON]
