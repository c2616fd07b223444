"""The next state of a delivery, decided without I/O: backoff doubling, jitter bounds, the
cap, Retry-After, error classes, the outcome recorded for an attempt, and the channels
that are not sent to after all."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tocsin.channels.base import SendResult
from tocsin.storage.claims import ClaimedDelivery, QueuedDelivery, QueuedEvent
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.tables import ChannelRow
from tocsin.worker_state import (
    MAX_BACKOFF,
    attempt_outcome,
    next_state,
    not_sendable,
    retry_delay,
    retry_later,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OK = SendResult(ok=True, latency_ms=1, status_code=200)
RETRYABLE = SendResult(ok=False, latency_ms=1, status_code=503, error="503", retryable=True)
PERMANENT = SendResult(ok=False, latency_ms=1, status_code=404, error="404")


class Fixed:
    """Jitter that always draws the same point of its range: 0 its low end, 1 its high."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


MIDDLE, LOWEST, HIGHEST = Fixed(0.5), Fixed(0.0), Fixed(1.0)


def after(result: SendResult, **given: object) -> tuple[DeliveryStatus, float | None]:
    """The status and the retry delay (seconds from NOW) after one attempt."""
    args: dict[str, object] = {
        "attempt_number": 1,
        "cycle_start": 0,
        "max_retries": 3,
        "base_delay": 5.0,
        "now": NOW,
        "rng": MIDDLE,
    }
    args.update(given)
    state = next_state(result, **args)  # type: ignore[arg-type]
    delay = state.next_attempt_at and (state.next_attempt_at - NOW).total_seconds()
    return state.status, delay


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 80.0), (8, 640.0)],
)
def test_the_backoff_doubles_with_each_attempt_of_the_cycle(attempt: int, delay: float) -> None:
    assert retry_delay(5.0, attempt, None, MIDDLE) == pytest.approx(delay)
    assert after(RETRYABLE, attempt_number=attempt, max_retries=10) == (
        DeliveryStatus.RETRYING,
        pytest.approx(delay),
    )


@pytest.mark.parametrize(
    ("rng", "factor"),
    [(LOWEST, 0.8), (MIDDLE, 1.0), (HIGHEST, 1.2)],
)
def test_jitter_stays_within_twenty_percent(rng: Fixed, factor: float) -> None:
    assert retry_delay(10.0, 2, None, rng) == pytest.approx(20.0 * factor)


def test_real_jitter_draws_within_twenty_percent_and_spreads() -> None:
    rng = random.Random(8)
    delays = [retry_delay(10.0, 1, None, rng) for _ in range(2000)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert min(delays) < 8.2 and max(delays) > 11.8


@pytest.mark.parametrize(
    ("attempt", "rng", "delay"),
    [
        (10, MIDDLE, 2560.0),  # 5 * 2**9: below the cap, as it is
        (11, MIDDLE, MAX_BACKOFF),  # 5 * 2**10 = 5120 s: the first capped step
        (40, MIDDLE, MAX_BACKOFF),  # far past it: still the cap
        (11, LOWEST, MAX_BACKOFF * 0.8),  # the jitter applies to the capped step
        (11, HIGHEST, MAX_BACKOFF * 1.2),
    ],
)
def test_the_backoff_is_capped(attempt: int, rng: Fixed, delay: float) -> None:
    assert retry_delay(5.0, attempt, None, rng) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        (None, 10.0),  # no Retry-After: the backoff
        (3.0, 10.0),  # shorter than the backoff: the backoff wins
        (30.0, 30.0),  # longer: Retry-After wins, without jitter
        (86400.0, MAX_BACKOFF),  # longer than the cap: capped
    ],
)
def test_a_longer_retry_after_wins_capped(retry_after: float | None, delay: float) -> None:
    result = SendResult(
        ok=False, latency_ms=1, status_code=429, retryable=True, retry_after=retry_after
    )
    assert retry_delay(5.0, 2, retry_after, MIDDLE) == pytest.approx(delay)
    assert after(result, attempt_number=2) == (DeliveryStatus.RETRYING, pytest.approx(delay))


@pytest.mark.parametrize(
    ("result", "attempt", "cycle_start", "max_retries", "status"),
    [
        (OK, 1, 0, 3, DeliveryStatus.DELIVERED),
        (OK, 4, 0, 3, DeliveryStatus.DELIVERED),  # the last try of the cycle delivers
        (RETRYABLE, 1, 0, 3, DeliveryStatus.RETRYING),
        (RETRYABLE, 3, 0, 3, DeliveryStatus.RETRYING),  # the third retry is still allowed
        (RETRYABLE, 4, 0, 3, DeliveryStatus.FAILED),  # 1 + maxRetries attempts: spent
        (RETRYABLE, 1, 0, 0, DeliveryStatus.FAILED),  # maxRetries 0: one attempt only
        (RETRYABLE, 5, 4, 3, DeliveryStatus.RETRYING),  # retryDelivery began a new cycle
        (RETRYABLE, 8, 4, 3, DeliveryStatus.FAILED),  # and that cycle is spent too
        (PERMANENT, 1, 0, 3, DeliveryStatus.FAILED),  # a 4xx fails at once
    ],
)
def test_error_classes_and_retries_decide_the_status(
    result: SendResult, attempt: int, cycle_start: int, max_retries: int, status: DeliveryStatus
) -> None:
    state = next_state(
        result,
        attempt_number=attempt,
        cycle_start=cycle_start,
        max_retries=max_retries,
        base_delay=5.0,
        now=NOW,
        rng=MIDDLE,
    )
    assert state.status == status
    assert (state.next_attempt_at is not None) == (status == DeliveryStatus.RETRYING)


def test_a_retry_in_a_new_cycle_backs_off_from_its_first_step() -> None:
    assert after(RETRYABLE, attempt_number=5, cycle_start=4) == (DeliveryStatus.RETRYING, 5.0)


@pytest.mark.parametrize(
    ("result", "attempt", "fallback"),
    [
        (OK, 1, 5.0),  # delivered, but should it not be stored it is sent again
        (PERMANENT, 1, 5.0),
        (RETRYABLE, 2, 10.0),
        (RETRYABLE, 4, None),  # the last try: nothing to fall back to
        (OK, 4, None),
    ],
)
def test_the_fallback_retry_is_kept_while_the_cycle_has_retries(
    result: SendResult, attempt: int, fallback: float | None
) -> None:
    state = next_state(
        result,
        attempt_number=attempt,
        cycle_start=0,
        max_retries=3,
        base_delay=5.0,
        now=NOW,
        rng=MIDDLE,
    )
    got = state.retry_at and (state.retry_at - NOW).total_seconds()
    assert got == (pytest.approx(fallback) if fallback is not None else None)


def channel(**fields: object) -> ChannelRow:
    return ChannelRow(id="c", kind="WEBHOOK", name="hook", **fields)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (None, (DeliveryStatus.FAILED, "channel was deleted")),
        (channel(enabled=False), (DeliveryStatus.SUPPRESSED, "channel is disabled")),
        (
            channel(muted_until=NOW + timedelta(hours=1)),
            (DeliveryStatus.SUPPRESSED, "channel is muted until 2026-01-01T13:00:00Z"),
        ),
        (
            channel(enabled=False, muted_until=NOW + timedelta(hours=1)),
            (DeliveryStatus.SUPPRESSED, "channel is disabled"),
        ),
        (channel(muted_until=NOW - timedelta(seconds=1)), None),  # the mute ran out
        (channel(muted_until=NOW), None),  # it ends at that instant
        (channel(), None),
    ],
)
def test_a_channel_deleted_disabled_or_muted_is_not_sent_to(
    row: ChannelRow | None, expected: tuple[DeliveryStatus, str] | None
) -> None:
    assert not_sendable(row, NOW) == expected


def claimed(attempt_count: int, *, max_retries: int = 3, cycle_start: int = 0) -> ClaimedDelivery:
    delivery = QueuedDelivery(
        id="d", channel_id="c", attempt_count=attempt_count, cycle_start=cycle_start, digest_id=None
    )
    event = QueuedEvent(
        id="e", type="test", priority="INFO", title="t", detail=None, metadata_={}, occurred_at=NOW
    )
    return ClaimedDelivery(delivery, event, channel(max_retries=max_retries), "token")


@pytest.mark.parametrize(
    ("result", "attempt_count", "status", "next_in", "fallback_in"),
    [
        (OK, 0, DeliveryStatus.DELIVERED, None, 5.0),
        (RETRYABLE, 1, DeliveryStatus.RETRYING, 10.0, 10.0),
        (RETRYABLE, 3, DeliveryStatus.FAILED, None, None),
        (PERMANENT, 0, DeliveryStatus.FAILED, None, 5.0),
    ],
)
def test_the_outcome_to_record_numbers_the_attempt_and_carries_its_state(
    result: SendResult,
    attempt_count: int,
    status: DeliveryStatus,
    next_in: float | None,
    fallback_in: float | None,
) -> None:
    started = NOW - timedelta(seconds=1)
    outcome = attempt_outcome(
        claimed(attempt_count), result, started_at=started, now=NOW, base_delay=5.0, rng=MIDDLE
    )
    seconds = [
        at and (at - NOW).total_seconds()
        for at in (outcome.next_attempt_at, outcome.fallback_retry_at)
    ]
    assert (outcome.number, outcome.new_status, seconds) == (
        attempt_count + 1,
        status,
        [next_in, fallback_in],
    )
    assert (outcome.delivery_id, outcome.claim_token) == ("d", "token")
    assert (outcome.started_at, outcome.finished_at) == (started, NOW)
    assert (outcome.ok, outcome.status_code, outcome.error) == (
        result.ok,
        result.status_code,
        result.error,
    )


def test_an_undecided_failure_retries_later_even_past_its_retries() -> None:
    failed = SendResult(ok=False, latency_ms=2, error="internal error (RuntimeError)")
    outcome = retry_later(
        claimed(3, max_retries=3), failed, started_at=NOW, now=NOW, delay=timedelta(seconds=25)
    )
    assert outcome.new_status == DeliveryStatus.RETRYING
    assert outcome.next_attempt_at == outcome.fallback_retry_at == NOW + timedelta(seconds=25)
    assert (outcome.number, outcome.error) == (4, "internal error (RuntimeError)")
