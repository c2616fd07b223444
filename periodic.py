"""Periodic work, once per cluster: named jobs run at intervals by whichever process gets
the job's turn (``storage/periodic_lock.py``: an advisory lock on PostgreSQL; on SQLite
only the holder of the outbox lock runs a runner at all).

    runner = PeriodicRunner(db, cluster_jobs(settings))
    await runner.start()      # a task that looks every few seconds for a job that is due
    await runner.stop()

Jobs: lease recovery, mute expiry and retention (``cluster_jobs``).
Digests are scheduled by their own rows (issue 9), which are closed once by construction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tocsin import metrics
from tocsin.settings import Settings
from tocsin.storage.database import Database
from tocsin.storage.lease_recovery import recover_expired_leases
from tocsin.storage.mutes import expire_mutes
from tocsin.storage.periodic_lock import cluster_turn
from tocsin.storage.retention import prune_finished
from tocsin.storage.types import utcnow

__all__ = [
    "PeriodicJob",
    "PeriodicRunner",
    "cluster_jobs",
    "lease_recovery",
    "mute_expiry",
    "retention",
]

log = logging.getLogger("tocsin.periodic")

LEASE_RECOVERY_EVERY = 30.0
MUTE_EXPIRY_EVERY = 15.0
"Seconds between sweeps of passed mutes (routing and the API treat them as ended at once)."
RETENTION_EVERY = 600.0
"Seconds between retention runs: each deletes what aged out since, in small batches."


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every: float
    "Seconds between runs, across the whole cluster."
    run: Callable[[Database, datetime], Awaitable[None]]


async def lease_recovery(db: Database, now: datetime) -> None:
    """Hand back deliveries whose worker died holding them."""
    async with db.write() as session:
        recovered = await recover_expired_leases(session, now=now)
    if recovered:
        metrics.LEASE_RECOVERIES.inc(recovered)
        log.info("re-queued %d deliveries whose worker's lease ran out", recovered)


async def mute_expiry(db: Database, now: datetime) -> None:
    """Clear mutes whose end has passed, each with its audit entry."""
    async with db.write() as session:
        ended = await expire_mutes(session, now=now)
    if ended:
        log.info("%d channel mutes ended", len(ended))


def retention(days: float) -> Callable[[Database, datetime], Awaitable[None]]:
    """The retention job: finished events older than ``days`` go, with their deliveries."""

    async def prune(db: Database, now: datetime) -> None:
        pruned = await prune_finished(db, before=now - timedelta(days=days))
        metrics.RETENTION_PRUNED.labels("event").inc(pruned.events)
        metrics.RETENTION_PRUNED.labels("delivery").inc(pruned.deliveries)
        metrics.RETENTION_PRUNED.labels("delivery_attempt").inc(pruned.attempts)
        if pruned.events:
            log.info(
                "retention deleted %d events, %d deliveries and %d attempts older than %g days",
                pruned.events,
                pruned.deliveries,
                pruned.attempts,
                days,
            )

    return prune


def cluster_jobs(settings: Settings) -> list[PeriodicJob]:
    """The periodic work of a Tocsin cluster. TOCSIN_RETENTION_DAYS=0 keeps rows forever."""
    jobs = [PeriodicJob("lease-recovery", LEASE_RECOVERY_EVERY, lease_recovery)]
    if settings.retention_days > 0:
        jobs.append(PeriodicJob("retention", RETENTION_EVERY, retention(settings.retention_days)))
    jobs.append(PeriodicJob("mute-expiry", MUTE_EXPIRY_EVERY, mute_expiry))
    return jobs


class PeriodicRunner:
    """Runs each job when it is due and this process gets its turn for the cluster."""

    def __init__(self, db: Database, jobs: Sequence[PeriodicJob], *, tick: float = 5.0) -> None:
        self._db = db
        self._jobs = list(jobs)
        self._tick = tick
        self._next: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def run_due(self, now: datetime | None = None) -> list[str]:
        """One look at every job: the names of those this process ran now."""
        ran = []
        for job in self._jobs:
            if time.monotonic() < self._next.get(job.name, 0.0):
                continue
            # Looked at again after a tick whoever ran it: the turn decides who runs it next.
            self._next[job.name] = time.monotonic() + min(job.every, self._tick)
            try:
                if await self._take_turn(job, now or utcnow()):
                    ran.append(job.name)
            except Exception:
                log.exception("periodic job %s failed; it is tried again later", job.name)
        return ran

    async def _take_turn(self, job: PeriodicJob, now: datetime) -> bool:
        every = timedelta(seconds=job.every)
        async with cluster_turn(self._db, job.name, every=every, now=now) as mine:
            if mine:
                await job.run(self._db, now)
        if mine:
            metrics.PERIODIC_RUNS.labels(job.name).inc()
        return mine

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tocsin-periodic")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("periodic work failed; trying again at the next tick")
            await asyncio.sleep(self._tick)
