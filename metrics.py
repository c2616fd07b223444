"""Prometheus metrics, created once per process."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "tocsin_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "tocsin_http_request_duration_seconds", "Time to answer an HTTP request", ["route"]
)
DELIVERIES = Counter(
    "tocsin_deliveries_total",
    "Deliveries finished, by channel kind and outcome",
    ["kind", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "tocsin_delivery_attempt_duration_seconds",
    "Time one delivery attempt took",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("tocsin_delivery_queue_depth", "Deliveries waiting to be sent (last poll)")
EVENTS = Counter("tocsin_events_total", "Events accepted by emitEvent", ["type", "deduplicated"])
OLDEST_DUE_SECONDS = Gauge(
    "tocsin_delivery_oldest_due_seconds", "Age of the oldest delivery due and not yet sent"
)
LEASE_RECOVERIES = Counter(
    "tocsin_lease_recoveries_total",
    "Deliveries left SENDING by a dead worker, handed back by this process's sweep",
)
RETENTION_PRUNED = Counter(
    "tocsin_retention_pruned_total", "Rows deleted by retention, by table", ["table"]
)
PERIODIC_RUNS = Counter(
    "tocsin_periodic_runs_total", "Periodic jobs this process ran for the cluster", ["job"]
)


@cache
def attempt_seconds(kind: str) -> Histogram:
    """ATTEMPT_SECONDS of one kind, looked up once (``labels`` takes a lock and builds a
    key on every call, once per delivery)."""
    return ATTEMPT_SECONDS.labels(kind)


@cache
def deliveries(kind: str, outcome: str) -> Counter:
    """DELIVERIES of one kind and outcome, looked up once."""
    return DELIVERIES.labels(kind, outcome)
