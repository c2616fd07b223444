"""Acceptance: `kill -9` of `tocsin serve`, then a restart on the same data — every event
whose emitEvent returned is delivered at least once (CONTRACT §4 "Accepted events are never
lost"). Receivers drop repeats by `webhook-id`, so the tests count distinct delivery ids.

Runs on the embedded SQLite default, and on PostgreSQL when TOCSIN_TEST_DATABASE_URL is set
(there a half-sent delivery waits for its lease: TOCSIN_DELIVERY_TIMEOUT 2 s +
TOCSIN_LEASE_GRACE 6 s)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import (
    EMIT,
    TocsinServer,
    accepted_event_id,
    answered_requests,
    create_token,
    delivered_events,
    e2e_database_url,
    save_webhook,
    server_env,
    settled,
    wait_for_events,
)
from tests.peers import HttpReceiver

pytestmark = pytest.mark.timeout(90)

# A half-sent delivery is re-sent at once on SQLite, after its lease (8 s) on PostgreSQL.
DELIVERY_WAIT = 45.0


def emit_input(title: str, **metadata: Any) -> dict[str, Any]:
    return {
        "input": {
            "type": "refresh_failed",
            "title": title,
            "detail": "e2e crash recovery",
            "metadata": {"environment": "e2e", **metadata},
        }
    }


async def emit_all(server: TocsinServer, token: str, titles: list[str]) -> list[str]:
    """Emit one event per title, four calls at a time; every call must be accepted."""
    accepted: list[str] = []
    queue = list(titles)

    async def emitter(client: httpx.AsyncClient) -> None:
        while queue:
            title = queue.pop(0)
            response = await client.post(
                "/graphql", json={"query": EMIT, "variables": emit_input(title)}
            )
            accepted.append(accepted_event_id(response))

    clients = [server.client(token) for _ in range(4)]
    try:
        await asyncio.gather(*(emitter(client) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    return accepted


async def test_events_accepted_while_the_receiver_is_down_survive_kill_9(
    template_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Events are emitted while the receiver is down (503), tocsin is killed with -9, the
    receiver comes back, tocsin restarts: every accepted event reaches the receiver."""
    data_dir = tmp_path / "data"
    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    receiver.respond("/down", 503, body="receiver is down")
    async with TocsinServer(env, log_dir=tmp_path) as server:
        # Enough retries that none runs out while the receiver is down: what is under test
        # is the crash, not giving up.
        await save_webhook(server, receiver.url("/down"), maxRetries=20)
        token = await create_token(server, "e2e-emitter", "EMITTER")

        accepted = await emit_all(server, token, [f"before the crash #{n}" for n in range(30)])
        # The worker has tried (and failed) to deliver: they are RETRYING, not yet sent.
        await receiver.wait_for_requests(10, path="/down", timeout=10)
        # A last burst, and the crash right after it: these are PENDING or SENDING.
        accepted += await emit_all(
            server, token, [f"just before the crash #{n}" for n in range(10)]
        )
        server.kill()
        await asyncio.sleep(0.3)  # the receiver finishes what reached it before the kill

        assert len(set(accepted)) == 40
        failed_attempts = len(receiver.requests_to("/down"))
        since = len(receiver.requests)
        receiver.respond("/down", 200)  # the receiver is back up
        await server.start()

        seen = await wait_for_events(
            receiver, set(accepted), path="/down", since=since, timeout=DELIVERY_WAIT, server=server
        )
        assert set(seen.values()) == set(accepted), "delivered an event nobody emitted"
        counts = await settled(
            server,
            lambda: len(delivered_events(answered_requests(receiver, "/down", since=since))),
            timeout=DELIVERY_WAIT,
        )
        print(
            f"\n[crash, receiver down] accepted={len(accepted)} failed attempts before the "
            f"crash={failed_attempts} requests after restart="
            f"{len(receiver.requests_to('/down')) - failed_attempts} "
            f"distinct deliveries={len(seen)} log={counts}"
        )
        await server.stop_cleanly()


async def test_kill_9_under_load_loses_no_accepted_event(
    template_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Eight emitters keep calling emitEvent while the receiver accepts; `kill -9` mid-stream;
    after the restart every event whose emitEvent returned is delivered (repeats allowed)."""
    data_dir = tmp_path / "data"
    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    async with TocsinServer(env, log_dir=tmp_path) as server:
        await save_webhook(server, receiver.url("/live"))
        token = await create_token(server, "e2e-emitter", "EMITTER")

        accepted: list[str] = []
        interrupted: list[str] = []
        killed = asyncio.Event()

        async def emitter(number: int) -> None:
            async with server.client(token, timeout=30.0) as client:
                sequence = 0
                while not killed.is_set():
                    sequence += 1
                    variables = emit_input(
                        f"load {number}-{sequence}", emitter=number, seq=sequence
                    )
                    try:
                        response = await client.post(
                            "/graphql", json={"query": EMIT, "variables": variables}
                        )
                    except httpx.TransportError as exc:
                        # Cut off by the kill: not accepted, so nothing is promised.
                        assert killed.is_set(), f"emitEvent failed before the kill: {exc!r}"
                        interrupted.append(repr(exc))
                        return
                    accepted.append(accepted_event_id(response))

        emitters = [asyncio.create_task(emitter(n)) for n in range(8)]
        try:
            # Mid-stream: emits are being accepted and deliveries are arriving.
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not any(task.done() for task in emitters):
                if len(accepted) >= 300 and len(receiver.requests_to("/live")) >= 50:
                    break
                await asyncio.sleep(0.02)
            # Half-sent deliveries at the crash: from now on the receiver holds each request
            # without answering, so the worker has sent them but never hears back.
            unanswered_from = len(receiver.requests)
            receiver.respond("/live", 200, hang=120)
            await receiver.wait_for_requests(unanswered_from + 1, path="/live", timeout=10)
            await asyncio.sleep(0.2)
            server.kill()
            killed.set()
            await asyncio.gather(*emitters)
        finally:
            killed.set()
            for task in emitters:
                task.cancel()
            await asyncio.gather(*emitters, return_exceptions=True)

        await asyncio.sleep(0.3)  # the receiver takes in what reached it before the kill
        unanswered = range(unanswered_from, len(receiver.requests))
        receiver.respond("/live", 200)
        assert accepted, "no emitEvent call succeeded before the kill"
        delivered_before = len(answered_requests(receiver, "/live", unanswered=unanswered))
        await server.start()

        seen = await wait_for_events(
            receiver,
            set(accepted),
            path="/live",
            unanswered=unanswered,
            timeout=DELIVERY_WAIT,
            server=server,
        )
        # Calls cut off by the kill may have committed: those events may arrive too, nothing else.
        unexpected = set(seen.values()) - set(accepted)
        assert len(unexpected) <= len(interrupted), (unexpected, interrupted)

        # The restarted server accepts and delivers new events as usual.
        after = await emit_all(server, token, [f"after the restart #{n}" for n in range(10)])
        await wait_for_events(
            receiver,
            set(accepted) | set(after),
            path="/live",
            unanswered=unanswered,
            timeout=DELIVERY_WAIT,
            server=server,
        )

        def answered() -> dict[str, str]:
            return delivered_events(answered_requests(receiver, "/live", unanswered=unanswered))

        counts = await settled(server, lambda: len(answered()), timeout=DELIVERY_WAIT)
        seen = answered()
        unexpected = set(seen.values()) - set(accepted) - set(after)
        assert len(unexpected) <= len(interrupted), (unexpected, interrupted)
        requests = len(receiver.requests_to("/live")) - len(unanswered)
        print(
            f"\n[crash under load] accepted before the kill={len(accepted)} "
            f"interrupted calls={len(interrupted)} answered before the kill={delivered_before} "
            f"left unanswered by the crash={len(unanswered)} "
            f"answered requests in all={requests} distinct deliveries={len(seen)} "
            f"repeats={requests - len(seen)} events of cut-off calls delivered={len(unexpected)} "
            f"log={counts}"
        )
        await server.stop_cleanly()
