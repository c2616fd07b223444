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
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import ChannelRow

__all__ = [
    "JITTER",
    "MAX_BACKOFF",
    "NextState",
    "Uniform",
    "next_state",
    "not_sendable",
    "retry_delay",
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
