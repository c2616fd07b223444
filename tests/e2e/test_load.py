"""Acceptance: 32 clients call emitEvent at once, each in its own loop, for 10 seconds
against a real `tocsin serve`. Every call succeeds and every accepted event reaches the
receiver. The figures (emits, emits/s, latency) are printed and recorded as properties,
never asserted: only correctness is."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import (
    EMIT,
    TocsinServer,
    accepted_event_id,
    create_token,
    delivered_events,
    e2e_database_url,
    save_webhook,
    server_env,
    settled,
    wait_for_events,
)
from tests.peers import HttpReceiver
from tests.support import PG_URL

pytestmark = [
    pytest.mark.timeout(120),
    # Issue 4's acceptance 6 is about SQLite's single write lock ("on SQLite"); on
    # PostgreSQL concurrent emits are covered by the kill -9 under load test. Running it
    # there as well cost 20 s of a suite that must stay under 5 minutes.
    pytest.mark.skipif(bool(PG_URL), reason="the 32-client load test is about SQLite"),
]

CLIENTS = 32
LOAD_SECONDS = 10.0
DELIVERY_WAIT = 45.0


def server_durations(log: str, *, token_name: str) -> list[float]:
    """Milliseconds the server itself took per request of ``token_name`` (its access log)."""
    durations = []
    for line in log.splitlines():
        _, marker, entry = line.partition(" tocsin.access ")
        if not marker:
            continue
        try:
            record = json.loads(entry)
        except ValueError:
            continue
        if record.get("token") == token_name and record.get("path") == "/graphql":
            durations.append(float(record["duration_ms"]))
    return durations


async def test_32_concurrent_emitters_for_10_seconds(
    template_database: str,
    tmp_path: Path,
    receiver: HttpReceiver,
    record_property: Callable[[str, object], None],
) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    async with TocsinServer(env, log_dir=tmp_path) as server:
        await save_webhook(server, receiver.url("/load"))
        token = await create_token(server, "load-emitter", "EMITTER")

        accepted: list[str] = []
        latencies: list[float] = []
        failures: list[str] = []
        transport_errors = 0
        go = asyncio.Event()
        stop_at = 0.0

        async def client_loop(number: int) -> None:
            nonlocal transport_errors
            async with server.client(token, timeout=30.0) as client:
                await go.wait()
                sequence = 0
                while time.monotonic() < stop_at:
                    sequence += 1
                    variables = {
                        "input": {
                            "type": "refresh_failed",
                            "title": f"load {number}-{sequence}",
                            "detail": "e2e load test",
                            "metadata": {"client": number, "seq": sequence},
                        }
                    }
                    started = time.perf_counter()
                    try:
                        response = await client.post(
                            "/graphql", json={"query": EMIT, "variables": variables}
                        )
                    except httpx.HTTPError as exc:
                        transport_errors += 1
                        failures.append(f"client {number} call {sequence}: {exc!r}")
                        continue
                    latencies.append(time.perf_counter() - started)
                    try:
                        accepted.append(accepted_event_id(response))
                    except AssertionError as exc:
                        failures.append(f"client {number} call {sequence}: {exc}")

        clients = [asyncio.create_task(client_loop(n)) for n in range(CLIENTS)]
        began = time.monotonic()
        stop_at = began + LOAD_SECONDS
        go.set()
        await asyncio.gather(*clients)
        elapsed = time.monotonic() - began
        delivered_during_load = len(receiver.requests_to("/load"))

        calls = len(latencies) + transport_errors
        quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        figures = {
            "emit_calls": calls,
            "emits_accepted": len(accepted),
            "emits_per_second": round(len(accepted) / elapsed, 1),
            "latency_p50_ms": round(quantiles[49] * 1000, 1),
            "latency_p99_ms": round(quantiles[98] * 1000, 1),
            "latency_max_ms": round(max(latencies, default=0.0) * 1000, 1),
            "failures": len(failures),
            "delivered_during_load": delivered_during_load,
        }
        server_side = server_durations(server.logs(), token_name="load-emitter")
        if len(server_side) > 1:
            inside = statistics.quantiles(server_side, n=100)
            figures["server_p50_ms"] = round(inside[49], 1)
            figures["server_p99_ms"] = round(inside[98], 1)
            figures["server_max_ms"] = round(max(server_side), 1)
        for name, value in figures.items():
            record_property(name, value)
        print(f"\n[load] {CLIENTS} clients for {elapsed:.1f}s: {figures}")

        assert not failures, f"{len(failures)} emitEvent calls failed, e.g.: {failures[:5]}"
        assert accepted, "no emitEvent call was accepted"
        assert len(set(accepted)) == len(accepted), "two calls were answered with the same event"

        delivery_began = time.monotonic()
        seen = await wait_for_events(
            receiver, set(accepted), path="/load", timeout=DELIVERY_WAIT, server=server
        )
        assert set(seen.values()) == set(accepted), "delivered an event nobody emitted"
        counts = await settled(
            server,
            lambda: len(delivered_events(receiver.requests_to("/load"))),
            timeout=DELIVERY_WAIT,
        )
        requests = len(receiver.requests_to("/load"))
        backlog_seconds = time.monotonic() - delivery_began
        record_property("delivery_backlog_seconds", round(backlog_seconds, 1))
        record_property("receiver_requests", requests)
        print(
            f"[load] every accepted event delivered {backlog_seconds:.1f}s after the load ended; "
            f"receiver requests={requests} distinct deliveries={len(seen)} log={counts}"
        )
        await server.stop_cleanly()
