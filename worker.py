"""The delivery worker: claims due deliveries, sends them, records every attempt, and
schedules retries. Woken at once when an emit commits; polls as a fallback."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tocsin import metrics
from tocsin.channels.base import SendResult
from tocsin.digest_scheduler import DigestScheduler
from tocsin.periodic import PeriodicRunner, cluster_jobs
from tocsin.storage.claims import (
    AttemptOutcome,
    ClaimedDelivery,
    claim_due_deliveries,
    finish_without_attempt,
    queue_depth,
    record_outcomes,
    release_claims,
    release_orphaned_sends,
    renew_leases,
    retry_unrecorded,
)
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.outbox_lock import OutboxLock, sqlite_database_path
from tocsin.storage.types import utcnow
from tocsin.storage.wakeup import DeliveryListener
from tocsin.worker_attempt import WorkerServices, attempt, frames
from tocsin.worker_state import attempt_outcome, not_sendable, retry_later

log = logging.getLogger("tocsin.worker")


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    concurrency: int = 128
    "Attempts in flight at once, across all channels."
    per_channel: int = 8
    "Attempts in flight at once to one channel."
    prefetch: int = 120
    """Deliveries per channel claimed ahead, so a finished attempt starts the next at once
    (with per_channel, a channel holds at most ``concurrency`` claims): enough that the
    queue outlasts the turn that refills it, since a turn is only asked for once the
    queue is down to less than a round of sends."""
    poll_seconds: float = 1.0


EXPIRED_LOOK_EVERY = 1.0
"""Seconds between a claim's looks for deliveries whose lease ran out (their worker died):
a lease is many seconds, and every other turn's claim reads only the queue's front."""


CLAIMS_HELD = 4
"""Claims held at once (sending or queued), in multiples of ``WorkerLimits.concurrency``;
a turn claims at most two such multiples."""
RECORD_AT_LEAST = 256
"Outcomes waiting to be recorded that wake the loop, whatever the queues hold."


class Worker:
    """One loop claims due deliveries into per-channel queues and records finished
    attempts, in one transaction per turn; sends run as tasks, at most ``per_channel``
    at once to a channel and ``concurrency`` in all, so a slow destination only ever
    holds its own slots."""

    def __init__(
        self,
        services: WorkerServices,
        limits: WorkerLimits | None = None,
        *,
        outbox_lock: OutboxLock | None = None,
    ) -> None:
        """``outbox_lock``: on SQLite, the database's lock when the process took it
        already (``tocsin serve``, ``tocsin worker``); otherwise ``start()`` takes it."""
        self._services = services
        self._limits = limits = limits or WorkerLimits()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: Counter[str | None] = Counter()
        self._queued: dict[str | None, deque[ClaimedDelivery]] = {}
        self._queued_count = 0
        self._sends: set[asyncio.Task[None]] = set()
        self._finished: list[AttemptOutcome] = []
        self._listener: DeliveryListener | None = None
        self._stopping = False
        self._held: dict[str, tuple[str, datetime]] = {}
        "Deliveries claimed and not yet recorded: id -> (claim token, lease expiry)."
        self._cut_short: list[tuple[str, str]] = []
        "Claims of sends that stop() cancelled, to hand back."
        self._outbox_lock = outbox_lock
        self._own_lock = False
        # Outlasts one attempt (bounded by the timeout, plus the guard's 5 s); a delivery
        # that waits longer in its channel's queue has its lease renewed each loop turn.
        self._lease = timedelta(
            seconds=services.settings.delivery_timeout + services.settings.lease_grace
        )
        self._last_depth = 0.0
        self._expired_looked = -EXPIRED_LOOK_EVERY
        "When a claim last looked for deliveries whose lease ran out (monotonic)."
        self._rng = random.Random()
        self.last_turn = time.monotonic()
        "When the loop last began a turn (monotonic): what /readyz's heartbeat looks at."
        self._periodic: PeriodicRunner | None = None
        intervals = services.settings.digest_intervals
        self._digests = DigestScheduler(services.db, intervals, on_closed=self._wake.set)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wake.set()
        self._digests.wake()  # new deliveries may have opened a digest due sooner

    async def start(self) -> None:
        if self._services.db.is_sqlite:
            await self._own_the_outbox()
        else:
            try:
                self._listener = await DeliveryListener.open(self._services.db.engine, self.wake)
            except Exception as exc:
                log.warning(
                    "cannot LISTEN for new deliveries (%s); polling only", type(exc).__name__
                )
        self._stopping = False
        self.last_turn = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="tocsin-worker")
        # On SQLite this worker owns the outbox now; on PostgreSQL the jobs take turns.
        self._periodic = PeriodicRunner(self._services.db, cluster_jobs(self._services.settings))
        await self._periodic.start()
        self._digests.start()

    async def _own_the_outbox(self) -> None:
        """Take the SQLite database's outbox lock (``OutboxOwnedElsewhere`` when another
        process holds it), then re-queue what a dead predecessor left SENDING."""
        path = sqlite_database_path(self._services.db.engine.url)
        if path is None:
            return  # in memory: no other process can see it
        if self._outbox_lock is None or not self._outbox_lock.held:
            self._outbox_lock = await asyncio.to_thread(OutboxLock.acquire, path)
            self._own_lock = True
        try:
            async with self._services.db.write() as session:
                released = await release_orphaned_sends(
                    session, now=utcnow(), owner=self._outbox_lock
                )
        except BaseException:
            self._release_lock()
            raise
        if released:
            log.info("re-queued %d deliveries left half-sent by a previous run", released)

    def _release_lock(self) -> None:
        if self._own_lock and self._outbox_lock is not None:
            self._outbox_lock.release()
            self._outbox_lock, self._own_lock = None, False

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, give attempts under way ``grace`` seconds to finish (by default
        the delivery timeout and one more), record them, and hand every other claim back."""
        if self._periodic is not None:
            await self._periodic.stop()
            self._periodic = None
        await self._digests.stop()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._task is not None:
            # Ask the loop to stop between turns: cancelled in the middle of a commit, it
            # could not know which deliveries it had just claimed, nor hand them back.
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        waiting = [(c.delivery.id, c.claim_token) for queue in self._queued.values() for c in queue]
        self._queued.clear()
        self._queued_count = 0
        for delivery_id, _ in waiting:
            self._held.pop(delivery_id, None)
        if self._sends:
            # Attempts under way finish within the delivery timeout (a SIGTERM is a clean
            # stop); whatever is cut short is handed back below and sent again (maybe twice:
            # at least once is the promise).
            sends = set(self._sends)
            if grace is None:
                grace = self._services.settings.delivery_timeout + 1
            await asyncio.wait(sends, timeout=grace)
            for task in sends:
                task.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
        waiting += self._cut_short
        self._cut_short = []
        finished, self._finished = self._finished, []
        try:
            async with self._services.db.write() as session:
                await record_outcomes(session, finished)
                await release_claims(session, waiting, now=utcnow())
        finally:
            self._release_lock()

    async def _run(self) -> None:
        while not self._stopping:
            self.last_turn = time.monotonic()
            # Cleared before the turn, so a wake-up during it (a commit, a finished send)
            # is not lost.
            self._wake.clear()
            try:
                again = await self._turn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the delivery loop failed; trying again shortly")
                again = False
            if again:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._limits.poll_seconds)
            except TimeoutError:
                pass

    def _room(self, channel_id: str | None) -> int:
        """How many more deliveries this channel may have claimed (in flight or queued)."""
        queued = len(self._queued.get(channel_id, ()))
        taken = self._in_flight[channel_id] + queued
        return self._limits.per_channel + self._limits.prefetch - taken

    def _full_channels(self) -> list[str | None]:
        held = set(self._in_flight) | set(self._queued)
        return [channel_id for channel_id in held if self._room(channel_id) <= 0]

    def _leases_to_renew(self, now: datetime) -> list[tuple[str, str]]:
        """Held deliveries past half their lease (waiting in a queue behind slow sends)."""
        soon = now + self._lease / 2
        return [(i, token) for i, (token, expires) in self._held.items() if expires < soon]

    async def _turn(self) -> bool:
        """Record the attempts finished since the last turn, renew the leases that need it
        and claim more, in one transaction (on SQLite every transaction waits for the one
        writer). True when the claim took all it could: more may be due at once.

        Otherwise the loop waits to be woken (``_done``, an emit, a retry's time): a turn
        right after each one would record a handful of outcomes each, and every turn's
        statements cost the same however few rows they carry."""
        limits = self._limits
        # A channel holds at most ``concurrency`` claims, the worker four times that: it
        # takes four channels that stop answering, all full, to leave none for the others.
        held = len(self._sends) + self._queued_count
        free = min(CLAIMS_HELD * limits.concurrency - held, 2 * limits.concurrency)
        now = utcnow()
        renew = self._leases_to_renew(now)
        finished, self._finished = self._finished, []
        batch: list[ClaimedDelivery] = []
        if not finished and not renew and free <= 0:
            return False
        try:
            batch = await self._record_and_claim(finished, renew, now, free)
        except Exception:
            if not finished:
                raise
            # One outcome that cannot be stored must hold up neither the others nor the
            # claims: store them one by one, then claim.
            kept = await self._record_each(finished)
            self._finished[:0] = kept
            if len(kept) == len(finished):
                raise
            batch = await self._record_and_claim([], renew, now, free)
        except BaseException:
            # Nothing of this turn was stored: the outcomes wait for the next turn (or for
            # stop()), so a delivery the receiver already has is not sent again.
            self._finished[:0] = finished
            raise
        for delivery_id, token in renew:
            if delivery_id in self._held:
                self._held[delivery_id] = (token, now + self._lease)
        for claimed in batch:
            self._held[claimed.delivery.id] = (claimed.claim_token, now + self._lease)
        for claimed in batch:
            self._queued.setdefault(claimed.delivery.channel_id, deque()).append(claimed)
        self._queued_count += len(batch)
        self._start_sends(list(self._queued))
        return free > 0 and len(batch) >= free

    async def _record_and_claim(
        self,
        finished: list[AttemptOutcome],
        renew: list[tuple[str, str]],
        now: datetime,
        free: int,
    ) -> list[ClaimedDelivery]:
        """One transaction: record ``finished``, renew ``renew``, claim up to ``free``."""
        batch: list[ClaimedDelivery] = []
        async with self._services.db.write() as session:
            await record_outcomes(session, finished)
            await renew_leases(session, renew, until=now + self._lease)
            if free > 0:
                look = time.monotonic() - self._expired_looked >= EXPIRED_LOOK_EVERY
                batch = await claim_due_deliveries(
                    session,
                    now=now,
                    lease=self._lease,
                    limit=free,
                    room_per_channel=self._room,
                    full_channels=self._full_channels(),
                    take_over_expired=look,
                )
                if look:
                    self._expired_looked = time.monotonic()
            await self._sample_queue_depth(session)
        return batch

    async def _record_each(self, outcomes: list[AttemptOutcome]) -> list[AttemptOutcome]:
        """Record outcomes one transaction each; one that fails sets its delivery to retry
        on its own. Answers the outcomes kept for later: all from the first that could
        not be set aside either while the database does not answer."""
        for index, outcome in enumerate(outcomes):
            try:
                async with self._services.db.write() as session:
                    await record_outcomes(session, [outcome])
                continue
            except Exception as exc:
                error = exc
            reason = f"attempt {outcome.number} could not be recorded ({type(error).__name__})"
            try:
                async with self._services.db.write() as session:
                    await retry_unrecorded(session, outcome, reason=reason)
                fate = "retried on its own" if outcome.fallback_retry_at else "no retry left"
            except Exception:
                if not await self._services.db.ping():
                    return outcomes[index:]
                fate = "sent again once its lease runs out"
            detail = getattr(error, "orig", None)  # the driver's words, without SQL or values
            log.error(
                "delivery %s: %s%s; %s\n%s",
                outcome.delivery_id,
                reason,
                f": {detail}" if detail is not None else "",
                fate,
                frames(error),
            )
        return []

    async def _sample_queue_depth(self, session: Any) -> None:
        if time.monotonic() - self._last_depth > 5:
            self._last_depth = time.monotonic()
            metrics.QUEUE_DEPTH.set(await queue_depth(session))

    def _start_sends(self, channel_ids: Iterable[str | None]) -> None:
        """Start queued deliveries while their channel and the worker have room."""
        for channel_id in channel_ids:
            queue = self._queued.get(channel_id)
            while (
                queue
                and self._in_flight[channel_id] < self._limits.per_channel
                and len(self._sends) < self._limits.concurrency
            ):
                claimed = queue.popleft()
                self._queued_count -= 1
                self._in_flight[channel_id] += 1
                task = asyncio.create_task(self._deliver(claimed))
                self._sends.add(task)
                task.add_done_callback(partial(self._done, channel_id=channel_id))
            if not queue:
                self._queued.pop(channel_id, None)

    def _done(self, task: asyncio.Task[None], channel_id: str | None) -> None:
        self._sends.discard(task)
        self._in_flight[channel_id] -= 1
        if self._in_flight[channel_id] <= 0:
            del self._in_flight[channel_id]
        # A slot of the channel is free; when the worker was full, a slot of any channel.
        was_full = len(self._sends) + 1 >= self._limits.concurrency
        self._start_sends(list(self._queued) if was_full else [channel_id])
        # A turn records the outcomes and claims more: wanted once the channel's queue is
        # down to less than a round of sends, or the worker is idle, or many wait to be
        # recorded. Until then each send finished adds to the next turn's batch.
        if (
            len(self._queued.get(channel_id, ())) < self._limits.per_channel
            or not self._sends
            or len(self._finished) >= RECORD_AT_LEAST
        ):
            self._wake.set()

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        """One claimed delivery, whatever happens: the claim leaves ``_held``, and its outcome
        (a failed attempt with a retry when the worker itself failed) goes to the next turn."""
        delivery_id = claimed.delivery.id
        started_at = utcnow()
        try:
            outcome = await self._send(claimed, started_at)
        except asyncio.CancelledError:
            self._cut_short.append((delivery_id, claimed.claim_token))
            raise
        except Exception as exc:
            log.error(
                "delivery %s: the worker failed (%s); recorded as a failed attempt\n%s",
                delivery_id,
                type(exc).__name__,
                frames(exc),
            )
            outcome = self._failed_in_worker(claimed, exc, started_at)
        finally:
            self._held.pop(delivery_id, None)
        if outcome is None:
            return
        # The slot is freed now; the run loop records the outcome with the next claim.
        # Until then the row stays SENDING under its lease, so it is neither claimed twice
        # nor lost if the process dies first (it is sent again).
        self._finished.append(outcome)
        if outcome.new_status == DeliveryStatus.RETRYING and outcome.next_attempt_at:
            self._wake_at((outcome.next_attempt_at - utcnow()).total_seconds())

    async def _send(self, claimed: ClaimedDelivery, started_at: datetime) -> AttemptOutcome | None:
        """Attempt one claimed delivery; None when it is finished without an attempt."""
        channel = claimed.channel
        refusal = not_sendable(channel, started_at)
        if refusal is not None:
            status, reason = refusal
            async with self._services.db.write() as session:
                await finish_without_attempt(
                    session,
                    claimed.delivery.id,
                    claimed.claim_token,
                    status=status,
                    reason=reason,
                )
            return None
        assert channel is not None
        result = await attempt(claimed, channel, self._services)
        metrics.attempt_seconds(channel.kind).observe(result.latency_ms / 1000)
        outcome = self._outcome(claimed, result, started_at)
        if outcome.new_status != DeliveryStatus.RETRYING:
            metrics.deliveries(channel.kind, outcome.new_status.lower()).inc()
        return outcome

    def _outcome(
        self, claimed: ClaimedDelivery, result: SendResult, started_at: datetime
    ) -> AttemptOutcome:
        return attempt_outcome(
            claimed,
            result,
            started_at=started_at,
            now=utcnow(),
            base_delay=self._services.settings.retry_base_delay,
            rng=self._rng,
        )

    def _failed_in_worker(
        self, claimed: ClaimedDelivery, exc: Exception, started_at: datetime
    ) -> AttemptOutcome:
        result = SendResult(
            ok=False,
            latency_ms=(utcnow() - started_at).total_seconds() * 1000,
            error=f"internal error ({type(exc).__name__})",
            retryable=True,
        )
        try:
            return self._outcome(claimed, result, started_at)
        except Exception:  # broken beyond this attempt: try again, but not at once
            return retry_later(
                claimed, result, started_at=started_at, now=utcnow(), delay=self._lease
            )

    def _wake_at(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0), self._wake.set)
