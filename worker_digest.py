"""One attempt at a digest's delivery: its members, oldest first, become a ``Digest`` that
the channel's kind renders and sends in parts, resuming after the parts an earlier attempt
sent (``digest.parts_sent``, stored as soon as they went out).

The only branch the single-event attempt (``worker_attempt.attempt``) has for digests.
"""

from __future__ import annotations

import asyncio
import time

from tocsin.channels.base import Destination, Digest, Message, SendContext, SendResult
from tocsin.channels.registry import sender_for
from tocsin.storage.claims import ClaimedDelivery
from tocsin.storage.database import Database
from tocsin.storage.digests import DigestMembers, digest_members, record_parts_sent
from tocsin.storage.tables import DeliveryRow, EventRow

__all__ = ["attempt_digest", "digest_of", "message_of"]

PART_GRACE = 5.0
"Seconds past the delivery timeout, per part, before a send that ignores it is cut off."


def message_of(delivery: DeliveryRow, event: EventRow) -> Message:
    """One member as the kinds render it (its own delivery id, as in a single send)."""
    return Message(
        delivery_id=delivery.id,
        event_id=event.id,
        event_type=event.type,
        priority=event.priority,
        title=event.title,
        detail=event.detail,
        metadata=event.metadata_,
        occurred_at=event.occurred_at,
    )


def digest_of(found: DigestMembers) -> Digest:
    row = found.digest
    assert row.delivery_id is not None and row.period_end is not None  # it is closed
    return Digest(
        delivery_id=row.delivery_id,
        digest_id=row.id,
        priority=row.priority,
        period_start=row.period_start,
        period_end=row.period_end,
        messages=[message_of(delivery, event) for delivery, event in found.members],
    )


async def attempt_digest(
    claimed: ClaimedDelivery, destination: Destination, context: SendContext, db: Database
) -> SendResult:
    """Send the rest of the digest ``claimed`` carries; store how many parts went out."""
    started = time.perf_counter()
    delivery = claimed.delivery
    assert delivery.digest_id is not None
    async with db.read() as session:
        found = await digest_members(session, digest_id=delivery.digest_id, delivery_id=delivery.id)
    if found is None or not found.members:
        return SendResult(ok=False, latency_ms=0.0, error="the digest holds no events any more")
    digest, before = digest_of(found), found.digest.parts_sent
    kind = sender_for(destination.kind)
    remaining = max(len(kind.render_digest(destination, digest, context)) - before, 1)
    try:
        async with asyncio.timeout((context.timeout + PART_GRACE) * remaining):
            result, sent = await kind.send_digest(destination, digest, context, sent=before)
    except TimeoutError:
        latency_ms = (time.perf_counter() - started) * 1000
        error = f"timed out after {context.timeout:g}s"
        return SendResult(ok=False, latency_ms=latency_ms, error=error, retryable=True)
    if sent != before:
        async with db.write() as session:
            await record_parts_sent(
                session,
                digest_id=digest.digest_id,
                delivery_id=delivery.id,
                claim_token=claimed.claim_token,
                parts=sent,
            )
    return result
