"""Where a delivery goes next, decided without I/O: after an attempt (delivered, retry
when, failed), and before one (a channel deleted, disabled or muted since the claim).

The retry policy: a retryable failure is tried again after ``base * 2**(n-1)`` seconds
for the n-th attempt of the cycle (capped at ``MAX_BACKOFF``), with ±20 % jitter; a
receiver's Retry-After wins when longer (capped too). A cycle allows ``max_retries``
retries; ``retryDelivery`` starts a new cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from tocsin.channels.base import SendResult
from tocsin.storage.claims import AttemptOutcome, ClaimedDelivery
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import ChannelRow

__all__ = [
    "JITTER",
    "MAX_BACKOFF",
    "NextState",
    "Uniform",
    "attempt_outcome",
    "next_state",
    "not_sendable",
    "retry_delay",
    "retry_later",
]

MAX_BACKOFF = 3600.0
"Seconds; the longest exponential step, and the longest Retry-After honoured."
JITTER = 0.2
"Each delay is drawn within ±20 % of its step, so retries of one outage spread out."


class Uniform(Protocol):
    """The source of jitter: ``random.Random`` or a fixed one in tests."""

    def uniform(self, a: float, b: float) -> float: ...


class NextState(NamedTuple):
    status: DeliveryStatus
    next_attempt_at: datetime | None
    "When RETRYING is due; None for DELIVERED and FAILED."
    retry_at: datetime | None
    "When to send again should this outcome fail to be stored; None: no retry was left."


def retry_delay(base: float, attempt: int, retry_after: float | None, rng: Uniform) -> float:
    """Exponential backoff with ±20 % jitter; a receiver's Retry-After wins when longer."""
    delay = min(base * 2 ** (attempt - 1), MAX_BACKOFF) * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return delay


def next_state(
    result: SendResult,
    *,
    attempt_number: int,
    cycle_start: int,
    max_retries: int,
    base_delay: float,
    now: datetime,
    rng: Uniform,
) -> NextState:
    """The status an attempt leaves its delivery in. ``attempt_number`` counts every
    attempt of the delivery; ``cycle_start`` is how many came before this cycle."""
    in_cycle = attempt_number - cycle_start
    retry_at: datetime | None = None
    if in_cycle <= max_retries:
        delay = retry_delay(base_delay, in_cycle, result.retry_after, rng)
        retry_at = now + timedelta(seconds=delay)
    if result.ok:
        return NextState(DeliveryStatus.DELIVERED, None, retry_at)
    if result.retryable and retry_at is not None:
        return NextState(DeliveryStatus.RETRYING, retry_at, retry_at)
    return NextState(DeliveryStatus.FAILED, None, retry_at)


def attempt_outcome(
    claimed: ClaimedDelivery,
    result: SendResult,
    *,
    started_at: datetime,
    now: datetime,
    base_delay: float,
    rng: Uniform,
) -> AttemptOutcome:
    """The attempt to record for ``result``, and the state it leaves its delivery in."""
    delivery, channel = claimed.delivery, claimed.channel
    state = next_state(
        result,
        attempt_number=delivery.attempt_count + 1,
        cycle_start=delivery.cycle_start,
        max_retries=channel.max_retries if channel is not None else 0,
        base_delay=base_delay,
        now=now,
        rng=rng,
    )
    return _recorded(claimed, result, state, started_at=started_at, now=now)


def retry_later(
    claimed: ClaimedDelivery,
    result: SendResult,
    *,
    started_at: datetime,
    now: datetime,
    delay: timedelta,
) -> AttemptOutcome:
    """A failed attempt whose next state could not be decided: RETRYING after ``delay``,
    whatever retries were left."""
    retry_at = now + delay
    state = NextState(DeliveryStatus.RETRYING, retry_at, retry_at)
    return _recorded(claimed, result, state, started_at=started_at, now=now)


def _recorded(
    claimed: ClaimedDelivery,
    result: SendResult,
    state: NextState,
    *,
    started_at: datetime,
    now: datetime,
) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=claimed.delivery.id,
        claim_token=claimed.claim_token,
        number=claimed.delivery.attempt_count + 1,
        started_at=started_at,
        duration_ms=result.latency_ms,
        ok=result.ok,
        status_code=result.status_code,
        error=result.error,
        new_status=state.status,
        next_attempt_at=state.next_attempt_at,
        finished_at=now,
        fallback_retry_at=state.retry_at,
        digest_id=claimed.delivery.digest_id,
    )


def not_sendable(channel: ChannelRow | None, now: datetime) -> tuple[DeliveryStatus, str] | None:
    """Why a claimed delivery is not sent after all, decided when it is sent."""
    if channel is None:
        return DeliveryStatus.FAILED, "channel was deleted"
    if not channel.enabled:
        return DeliveryStatus.SUPPRESSED, "channel is disabled"
    if channel.muted_until is not None and channel.muted_until > now:
        until = channel.muted_until.isoformat(timespec="seconds").replace("+00:00", "Z")
        return DeliveryStatus.SUPPRESSED, f"channel is muted until {until}"
    return None
