"""Emit and delivery throughput against a real `tocsin serve`, as ratios to a baseline.

    python bench/emit_and_deliver.py [--clients 32] [--seconds 10] [--database-url URL]

Starts `tocsin serve` (SQLite in a temporary data dir unless --database-url), a
webhook receiver (aiohttp), and measures in one run:
  baseline  GET /healthz requests/s with the same client concurrency
  emit      emitEvent calls/s, p50/p99 latency, errors
  deliver   seconds from the first emit until the receiver has every event
Figures are printed as ratios to the baseline; machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

TOKEN = "bench-admin-token"  # noqa: S105  (a throwaway server's bootstrap token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def hammer(url: str, clients: int, seconds: float, body: dict | None) -> list[float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if body is None:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
            else:
                async with session.post(url, json=body, headers=headers) as response:
                    data = await response.json()
                    ok = (
                        response.status == 200
                        and "errors" not in data
                        and not data["data"]["emitEvent"]["errors"]
                    )
            latencies.append(time.perf_counter() - started)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    if errors:
        print(f"  !! {errors} failed calls")
    return latencies


def describe(name: str, latencies: list[float], seconds: float) -> float:
    rate = len(latencies) / seconds
    q = statistics.quantiles(latencies, n=100)
    print(f"  {name:8} {rate:8.0f}/s  p50 {q[49] * 1000:7.1f} ms  p99 {q[98] * 1000:7.1f} ms")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    received: set[str] = set()
    done = asyncio.Event()
    expected = [0]

    async def hook(request: web.Request) -> web.Response:
        received.add((await request.json())["event_id"])
        if expected[0] and len(received) >= expected[0]:
            done.set()
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    env = {
        **os.environ,
        "TOCSIN_DATA_DIR": str(data_dir),
        "TOCSIN_BOOTSTRAP_TOKEN": TOKEN,
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
    }
    if args.database_url:
        env["TOCSIN_DATABASE_URL"] = args.database_url
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tocsin.cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            save = {
                "query": "mutation($u: String) { saveWebhookChannel(input: {url: $u}) "
                "{ errors { code } } }",
                "variables": {"u": f"http://127.0.0.1:{hook_port}/hook"},
            }
            async with session.post(
                f"{base}/graphql", json=save, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as response:
                assert (await response.json())["data"]["saveWebhookChannel"]["errors"] == []

        print(f"{args.clients} clients, {args.seconds:g} s each, {args.database_url or 'SQLite'}")
        baseline = describe(
            "healthz",
            await hammer(f"{base}/healthz", args.clients, args.seconds, None),
            args.seconds,
        )
        emit = {
            "query": "mutation($i: EmitEventInput!) { emitEvent(input: $i) "
            "{ event { id } errors { code } } }",
            "variables": {"i": {"type": "deploy_succeeded", "title": "bench"}},
        }
        started = time.perf_counter()
        latencies = await hammer(f"{base}/graphql", args.clients, args.seconds, emit)
        emit_rate = describe("emit", latencies, args.seconds)
        expected[0] = len(latencies)
        if len(received) < expected[0]:
            await asyncio.wait_for(done.wait(), timeout=300)
        drained = time.perf_counter() - started
        print(
            f"  deliver  {len(received) / drained:8.0f}/s  (all {len(received)} delivered "
            f"{drained - args.seconds:.1f} s after the last emit)"
        )
        print(
            f"  ratios   emit/healthz {emit_rate / baseline:.3f}   "
            f"deliver/healthz {len(received) / drained / baseline:.3f}"
        )
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
