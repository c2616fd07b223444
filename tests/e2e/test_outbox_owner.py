"""One process per SQLite file owns the outbox: a second `tocsin worker` or `tocsin serve`
beside a running one refuses to deliver (one line, exit 2) and re-sends nothing the first
holds; `serve --no-worker` beside it is fine, its emits delivered by the owner. And a busy
port stops `tocsin serve` before its worker sends anything."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e import free_port, only_line_mentioning
from tests.e2e.server import (
    EMIT,
    LOOPBACK,
    TocsinServer,
    accepted_event_id,
    answered_requests,
    delivered_events,
    save_webhook,
    server_env,
    settled,
    tocsin_command,
    wait_for_events,
)
from tests.peers import HttpReceiver
from tests.support import PG_URL

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="the ownership lock is SQLite's")


async def emit_many(server: TocsinServer, count: int, title: str) -> list[str]:
    async with server.client() as client:
        return [
            accepted_event_id(
                await client.post(
                    "/graphql",
                    json={"query": EMIT, "variables": {"input": {"type": "test", "title": t}}},
                )
            )
            for t in (f"{title} #{n}" for n in range(count))
        ]


async def run_tocsin(
    env: dict[str, str], *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """A ``tocsin`` command run to its end, without blocking this test's event loop (the
    receiver lives in it)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")} | env
    full["PYTHONUNBUFFERED"] = "1"
    process = await asyncio.create_subprocess_exec(
        *tocsin_command(),
        *args,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(args), process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def test_a_second_worker_beside_serve_sends_nothing_twice(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    # given `tocsin serve` sending a backlog to a slow receiver (sends are in flight)
    receiver.respond("/slow", 200, hang=1.0)
    env = server_env(tmp_path / "data")
    async with TocsinServer(env, log_dir=tmp_path) as server:
        await save_webhook(server, receiver.url("/slow"))
        accepted = await emit_many(server, 40, "backlog")
        await receiver.wait_for_requests(8, path="/slow", timeout=10)

        # when `tocsin worker` is started on the same SQLite file
        second = await run_tocsin(env, "worker", timeout=20)

        # then every event reaches the receiver exactly once
        seen = await wait_for_events(receiver, set(accepted), path="/slow", server=server)
        await settled(
            server,
            lambda: len(delivered_events(answered_requests(receiver, "/slow"))),
            timeout=30,
        )
        requests = receiver.requests_to("/slow")
        assert len(requests) == len(seen) == 40, f"{len(requests) - len(seen)} repeats"
        # and the second process said why it would not deliver, in one line, naming the first
        assert second.returncode == 2, second.stderr[-3000:]
        line = only_line_mentioning(second.stderr, "tocsin:")
        assert f"pid {server.pid}" in line, line
        assert "Traceback" not in second.stderr
        await server.stop_cleanly()


async def test_a_second_serve_refuses_and_serve_no_worker_is_served_by_the_owner(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    env = server_env(tmp_path / "data")
    async with TocsinServer(env, log_dir=tmp_path) as owner:
        await save_webhook(owner, receiver.url("/owned"))
        # given a second `tocsin serve` with its worker on the same file: it refuses
        second = await run_tocsin(env, "serve", "--host", LOOPBACK, "--port", str(free_port()))
        assert second.returncode == 2, second.stderr[-3000:]
        line = only_line_mentioning(second.stderr, "tocsin:")
        assert f"pid {owner.pid}" in line and "--no-worker" in line, line
        assert "Traceback" not in second.stderr

        # when an API without a worker runs beside the owner and accepts events
        api_log = tmp_path / "api"
        api_log.mkdir()
        async with TocsinServer(env, log_dir=api_log, args=("--no-worker",)) as api:
            accepted = await emit_many(api, 5, "through the API")
            # then the owner (which polls) delivers them, once each
            seen = await wait_for_events(receiver, set(accepted), path="/owned", timeout=15)
            assert len(receiver.requests_to("/owned")) == len(seen) == 5
            await api.stop_cleanly()
        await owner.stop_cleanly()


async def test_a_busy_port_stops_serve_before_anything_is_delivered(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    # given an event waiting for delivery, accepted by an API that runs no worker
    env = server_env(tmp_path / "data")
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as api:
        await save_webhook(api, receiver.url("/waiting"))
        await emit_many(api, 1, "waiting")
        await api.stop_cleanly()

    # when `tocsin serve` is started on a port another program listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run_tocsin(env, "serve", "--host", LOOPBACK, "--port", str(port))
        await asyncio.sleep(0.5)

    # then it stops with one line saying so, and delivered nothing
    assert result.returncode == 2, result.stderr[-3000:]
    line = only_line_mentioning(result.stderr, "tocsin:")
    assert f"{LOOPBACK}:{port}" in line and "address already in use" in line.lower(), line
    assert "Traceback" not in result.stderr
    assert receiver.requests_to("/waiting") == []
