"""Does throughput grow with worker processes? A backlog delivered by 1, 2 and 4
`tocsin worker` processes on one PostgreSQL database, to a local receiver.

    python bench/scale.py --database-url postgresql+asyncpg://USER:PW@HOST/ANY \\
        [--deliveries 5000] [--channels 4] [--latency 0.05] [--workers 1,2,4]

For each worker count: a fresh database (created beside the one named, dropped after),
``--channels`` webhook channels and deliveries/channels events, held back (due in an
hour) while the workers start and report ready on their health port; then all made due
at once (t0) with a NOTIFY. The receiver (aiohttp, in this process) answers each request
after ``--latency`` seconds and notes when each delivery id first arrived.

Printed per run: deliveries/s (t0 to the last first arrival), end-to-end p50/p99 (t0 to
each first arrival: for a backlog released at once that is the queue wait plus the
send), duplicates (a webhook-id seen twice), the speed-up over one worker, the workers'
CPU time per delivery (all worker processes together) and the 1-minute load average at
the end (on a shared machine, what else was running).
A worker has at most 8 attempts in flight per channel (WorkerLimits.per_channel), so
with a receiver that takes ``latency`` to answer, one worker can reach at most
channels * 8 / latency deliveries/s: the workers' concurrency, not claiming, bounds it
until the CPU does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from aiohttp import web
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tocsin.storage.database import create_engine
from tocsin.storage.migrate import upgrade_to_head

TOKEN = "tcs_bench-scale-admin-token-0123456789"  # noqa: S105  (a throwaway database's)
HELD = "UPDATE delivery SET next_attempt_at = now() + interval '1 hour'"
SAVE = (
    "mutation($u: String) { saveWebhookChannel(input: {url: $u, name: $u, signingSecret: "
    '"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}) { errors { code } } }'
)
RELEASE = "UPDATE delivery SET next_attempt_at = now(); NOTIFY tocsin_deliveries"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Answers after ``latency`` s; the first arrival of each delivery id, monotonic."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.first: dict[str, float] = {}
        self.duplicates = 0
        self.port = free_port()
        self.expected = 0
        self.done = asyncio.Event()

    async def hook(self, request: web.Request) -> web.Response:
        delivery_id = request.headers.get("webhook-id") or (await request.json())["id"]
        if delivery_id in self.first:
            self.duplicates += 1
        else:
            self.first[delivery_id] = time.monotonic()
            if len(self.first) >= self.expected:
                self.done.set()
        await asyncio.sleep(self.latency)
        return web.Response(text="ok")

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook/{n}", self.hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024).start()
        return runner

    def reset(self, expected: int) -> None:
        self.first, self.duplicates, self.expected = {}, 0, expected
        self.done = asyncio.Event()


def env_for(url: str, key: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    return env | {
        "TOCSIN_DATABASE_URL": url,
        "TOCSIN_SECRET_KEYS": key,
        "TOCSIN_BOOTSTRAP_TOKEN": TOKEN,
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "TOCSIN_DATA_DIR": str(data_dir),
        "TOCSIN_RETENTION_DAYS": "0",
    }


def tocsin() -> list[str]:
    script = Path(sys.executable).with_name("tocsin")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tocsin.cli"]


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *tocsin(),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    await asyncio.gather(*(process.wait() for process in processes))


async def wait_ready(url: str, process: asyncio.subprocess.Process, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{url}: exited with {process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} was not ready in {patience}s")


async def backlog(env: dict[str, str], receiver: Receiver, channels: int, events: int) -> None:
    """Through a `tocsin serve --no-worker`: the channels, then the events, held back."""
    port = free_port()
    api = await spawn("serve", "--no-worker", "--port", str(port), env=env)
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", api)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120
        ) as client:
            for n in range(channels):
                url = f"http://127.0.0.1:{receiver.port}/hook/{n}"
                save = SAVE
                assert (
                    await client.post("/graphql", json={"query": save, "variables": {"u": url}})
                ).status_code == 200
            emit = "mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) { errors { code } } }"
            for start in range(0, events, 1000):
                inputs = [
                    {"type": "test", "title": f"bench {i}"}
                    for i in range(start, min(events, start + 1000))
                ]
                response = await client.post(
                    "/graphql", json={"query": emit, "variables": {"i": inputs}}
                )
                assert (
                    response.status_code == 200
                    and not response.json()["data"]["emitEvents"]["errors"]
                )
    finally:
        await stop([api])


async def one_run(args: argparse.Namespace, workers: int, receiver: Receiver) -> dict[str, float]:
    admin = (
        args.database_url.rsplit("/", 1)[0].replace("postgresql+asyncpg", "postgresql")
        + "/postgres"
    )
    name = f"tocsin_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f"CREATE DATABASE {name}")
    await connection.close()
    url = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    processes: list[asyncio.subprocess.Process] = []
    try:
        engine = create_engine(url)
        await upgrade_to_head(engine)
        await engine.dispose()
        env = env_for(url, Fernet.generate_key().decode(), Path(tempfile.mkdtemp()))
        events = args.deliveries // args.channels
        receiver.reset(events * args.channels)
        await backlog(env, receiver, args.channels, events)
        db = await asyncpg.connect(dsn)
        await db.execute(HELD)
        ports = [free_port() for _ in range(workers)]
        for port in ports:
            processes.append(await spawn("worker", "--health-port", str(port), env=env))
        for port, process in zip(ports, processes, strict=True):
            await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        t0 = time.monotonic()
        await db.execute(RELEASE)
        cpu_before = sum(cpu_seconds(p.pid) for p in processes)
        await asyncio.wait_for(receiver.done.wait(), timeout=600)
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
        load = os.getloadavg()[0]
        await db.close()
    finally:
        await stop(processes)
        connection = await asyncpg.connect(admin)
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.close()
    arrivals = sorted(at - t0 for at in receiver.first.values())
    return {
        "rate": len(arrivals) / arrivals[-1],
        "p50": statistics.median(arrivals),
        "p99": arrivals[int(len(arrivals) * 0.99) - 1],
        "duplicates": receiver.duplicates,
        "cpu_ms": cpu * 1000 / len(arrivals),
        "load": load,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("TOCSIN_TEST_DATABASE_URL"))
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url postgresql+asyncpg://... is needed (workers share it)")
    receiver = Receiver(args.latency)
    runner = await receiver.start()
    results = {}
    try:
        for count in (int(n) for n in args.workers.split(",")):
            results[count] = await one_run(args, count, receiver)
    finally:
        await runner.cleanup()
    bound = args.channels * 8 / args.latency
    print(
        f"{args.deliveries} deliveries, {args.channels} webhook channels, receiver answers "
        f"after {args.latency * 1000:g} ms (one worker's ceiling: {bound:.0f}/s), "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "| workers | deliveries/s | speed-up | p50 (s) | p99 (s) | duplicates "
        "| worker CPU ms/delivery | load average |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = results[min(results)]["rate"]
    for count, r in results.items():
        print(
            f"| {count} | {r['rate']:.0f} | {r['rate'] / base:.2f}x | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {r['duplicates']:.0f} | {r['cpu_ms']:.1f} | {r['load']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
