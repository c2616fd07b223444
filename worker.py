"""The delivery worker: claims due deliveries, sends them, records every attempt, and
schedules retries. Woken at once when an emit commits; polls as a fallback."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from tocsin import metrics
from tocsin.channels.base import Destination, Message, SendContext, SendResult
from tocsin.channels.registry import sender_for
from tocsin.resolvers.channels import decrypt_secrets
from tocsin.resolvers.context import Services
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.outbox import (
    AttemptOutcome,
    ClaimedDelivery,
    claim_due_deliveries,
    finish_without_attempt,
    queue_depth,
    record_outcomes,
    release_orphaned_sends,
)
from tocsin.storage.types import utcnow

log = logging.getLogger("tocsin.worker")

MAX_BACKOFF = 3600.0


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    concurrency: int = 128
    "Attempts in flight at once, across all channels."
    per_channel: int = 8
    "Attempts in flight at once to one channel."
    poll_seconds: float = 1.0


def retry_delay(base: float, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with ±20 % jitter; a receiver's Retry-After wins when longer."""
    delay = min(base * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return delay


class Worker:
    def __init__(self, services: Services, limits: WorkerLimits | None = None) -> None:
        self._services = services
        self._limits = limits or WorkerLimits()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: Counter[str | None] = Counter()
        self._sends: set[asyncio.Task[None]] = set()
        self._finished: list[AttemptOutcome] = []
        self._flushing: asyncio.Task[None] | None = None
        self._slot_freed = asyncio.Event()
        settings = services.settings
        self._lease = timedelta(seconds=settings.delivery_timeout + 15)
        self._last_depth = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._services.db.is_sqlite:
            async with self._services.db.write() as session:
                released = await release_orphaned_sends(session, now=utcnow())
            if released:
                log.info("re-queued %d deliveries left half-sent by a previous run", released)
        self._task = asyncio.create_task(self._run(), name="tocsin-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._sends:
            # Give attempts under way a moment; whatever is cut short is re-sent on restart.
            await asyncio.wait(self._sends, timeout=2)
            for task in self._sends:
                task.cancel()
        await self._flush()

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming deliveries failed; trying again shortly")
                claimed = 0
            if claimed:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._limits.poll_seconds)
            except TimeoutError:
                pass

    async def _claim(self) -> int:
        free = self._limits.concurrency - len(self._sends)
        if free <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
            return 1
        per_channel = self._limits.per_channel
        async with self._services.db.write() as session:
            batch = await claim_due_deliveries(
                session,
                now=utcnow(),
                lease=self._lease,
                limit=free,
                room_per_channel=lambda channel_id: per_channel - self._in_flight[channel_id],
            )
            if time.monotonic() - self._last_depth > 5:
                self._last_depth = time.monotonic()
                metrics.QUEUE_DEPTH.set(await queue_depth(session))
        for claimed in batch:
            channel_id = claimed.delivery.channel_id
            self._in_flight[channel_id] += 1
            task = asyncio.create_task(self._deliver(claimed))
            self._sends.add(task)
            task.add_done_callback(lambda t, c=channel_id: self._done(t, c))
        return len(batch)

    def _done(self, task: asyncio.Task[None], channel_id: str | None) -> None:
        self._sends.discard(task)
        self._in_flight[channel_id] -= 1
        if self._in_flight[channel_id] <= 0:
            del self._in_flight[channel_id]
        self._slot_freed.set()
        self._wake.set()

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        delivery, event, channel = claimed.delivery, claimed.event, claimed.channel
        if channel is None or not channel.enabled:
            reason = "channel was deleted" if channel is None else "channel is disabled"
            status = DeliveryStatus.FAILED if channel is None else DeliveryStatus.SUPPRESSED
            async with self._services.db.write() as session:
                await finish_without_attempt(
                    session, delivery.id, status=status.value, reason=reason
                )
            return
        context: SendContext = self._services.extras["send_context"]
        message = Message(
            delivery_id=delivery.id,
            event_id=event.id,
            event_type=event.type,
            priority=event.priority,
            title=event.title,
            detail=event.detail,
            metadata=event.metadata_,
            occurred_at=event.occurred_at,
        )
        started_at = utcnow()
        started = time.perf_counter()
        try:
            destination = Destination(
                channel_id=channel.id,
                kind=channel.kind,
                name=channel.name,
                config=channel.config,
                secrets=decrypt_secrets(self._services.box, channel),
            )
            async with asyncio.timeout(context.timeout + 5):
                result = await sender_for(channel.kind).send(destination, message, context)
        except TimeoutError:
            result = SendResult(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=f"timed out after {context.timeout:g}s",
                retryable=True,
            )
        except Exception as exc:
            log.error("sender for %s crashed: %s", channel.kind, type(exc).__name__)
            result = SendResult(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=f"internal error ({type(exc).__name__})",
                retryable=True,
            )
        metrics.ATTEMPT_SECONDS.labels(channel.kind).observe(result.latency_ms / 1000)
        number = delivery.attempt_count + 1
        in_cycle = number - delivery.cycle_start
        now = utcnow()
        if result.ok:
            status, next_at = DeliveryStatus.DELIVERED, None
        elif result.retryable and in_cycle <= channel.max_retries:
            status = DeliveryStatus.RETRYING
            delay = retry_delay(
                self._services.settings.retry_base_delay, in_cycle, result.retry_after
            )
            next_at = now + timedelta(seconds=delay)
        else:
            status, next_at = DeliveryStatus.FAILED, None
        if status is not DeliveryStatus.RETRYING:
            metrics.DELIVERIES.labels(channel.kind, status.value.lower()).inc()
        self._finished.append(
            AttemptOutcome(
                delivery_id=delivery.id,
                number=number,
                started_at=started_at,
                duration_ms=result.latency_ms,
                ok=result.ok,
                status_code=result.status_code,
                error=result.error,
                new_status=status.value,
                next_attempt_at=next_at,
                finished_at=now,
            )
        )
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(self._flushing)
        if status is DeliveryStatus.RETRYING:
            self._wake_at(next_at.timestamp() - now.timestamp())

    async def _flush(self) -> None:
        """Write the finished attempts in one transaction (group commit)."""
        while self._finished:
            batch, self._finished = self._finished, []
            try:
                async with self._services.db.write() as session:
                    await record_outcomes(session, batch)
            except Exception:
                # The lease runs out and the deliveries are sent again: at least once.
                log.exception("recording %d delivery attempts failed", len(batch))

    def _wake_at(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0), self._wake.set)
