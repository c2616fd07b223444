"""One benchmark command for issue 11: every Tocsin figure against a baseline of the same run.

    pip install -e '.[bench]'
    python bench/run.py [--quick] [--json FILE]

Starts everything itself on loopback: a real ``tocsin serve`` (fresh SQLite data dir per
figure), a receiver process, the bare Strawberry app (bench/peers.py). Servers and senders
are pinned to core 0, the load generator and the receiver to core 1 (when there are two).
Load comes from ``wrk`` when installed, else from an asyncio generator on aiohttp.

ingest       emitEvent, 3 matching webhook channels, 1/16/64 clients: API only
             (``serve --no-worker``) and with delivery on (``serve``: every delivery made,
             and how long after the last emit the last one arrived), against bare Strawberry
batch        emitEvents of 1 000 events x 5 calls against raw sqlite3 writing the same rows
delivery     N queued deliveries drained by ``tocsin worker`` to one webhook, against raw
             aiohttp (32 at once) and Apprise json:// (32 tasks), rates at the receiver
e2e latency  emitEvent's answer to the receiver's hit, at a steady 200 events/s
isolation    one channel's drain rate while another channel's receiver hangs, against alone
peak RSS     the largest VmHWM of any Tocsin process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from report import CLIENTS, build_report, load_figure, parse_wrk, percentile, table  # noqa: E402

TOKEN = "bench-admin-token-0123456789"  # noqa: S105  (a throwaway server's bootstrap token)
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
EMIT = {
    "query": "mutation($i: EmitEventInput!) { emitEvent(input: $i) "
    "{ event { id } errors { code } } }",
    "variables": {"i": {"type": "deploy_succeeded", "title": "bench"}},
}
EMIT_MANY = (
    "mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) { events { id } errors { code } } }"
)
SAVE_WEBHOOK = (
    "mutation($u: String, $n: String) { saveWebhookChannel(input: {url: $u, name: $n}) "
    "{ errors { code message } } }"
)


@dataclass
class Plan:
    """How long each figure runs: the full run, or --quick."""

    warmup: float
    seconds: dict[int, float]
    batch_calls: int
    deliveries: int
    latency_seconds: float
    latency_rate: int = 200
    quick: bool = False


FULL = Plan(3, {1: 5, 16: 10, 64: 5}, 5, 5000, 20)
QUICK = Plan(1, {1: 2, 16: 4, 64: 2}, 5, 2000, 5, quick=True)


@dataclass
class Bench:
    plan: Plan
    receiver: str
    pinned: bool
    use_wrk: bool
    tmp: Path
    peak_rss_kb: int = 0
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin_to_server_core() -> None:
    os.sched_setaffinity(0, {0})


async def spawn(bench: Bench, *args: str, env: dict[str, str] | None = None) -> Any:
    """A child process, pinned to core 0 (the servers' and senders' core) when we pin."""
    return await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=_pin_to_server_core if bench.pinned else None,
    )


def rss_peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def stop(process: Any) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def tocsin_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TOCSIN_DATA_DIR": str(data_dir),
        "TOCSIN_BOOTSTRAP_TOKEN": TOKEN,
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "TOCSIN_DELIVERY_TIMEOUT": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


@asynccontextmanager
async def tocsin(bench: Bench, command: str, data_dir: Path, *flags: str) -> AsyncIterator[str]:
    """``tocsin serve`` (yields its base URL) or ``tocsin worker`` on ``data_dir``."""
    port = free_port()
    args = [sys.executable, "-m", "tocsin.cli", command]
    if command == "serve":
        args += ["--port", str(port), *flags]
    process = await spawn(bench, *args, env=tocsin_env(data_dir))
    base = f"http://127.0.0.1:{port}"
    try:
        if command == "serve":
            await wait_until_up(f"{base}/healthz")
        yield base
    finally:
        bench.peak_rss_kb = max(bench.peak_rss_kb, rss_peak_kb(process.pid))
        await stop(process)


async def graphql(base: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/graphql", json={"query": query, "variables": variables}, headers=AUTH
        ) as response,
    ):
        data: dict[str, Any] = await response.json()
    if data.get("errors"):
        raise RuntimeError(f"GraphQL refused: {data['errors']}")
    return data


async def add_webhooks(base: str, urls: dict[str, str]) -> None:
    for name, url in urls.items():
        data = await graphql(base, SAVE_WEBHOOK, {"u": url, "n": name})
        assert data["data"]["saveWebhookChannel"]["errors"] == [], data


async def receiver_get(bench: Bench, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{bench.receiver}{path}") as r:
        return await r.json()


async def receiver_reset(bench: Bench) -> None:
    async with aiohttp.ClientSession() as session:
        await session.post(f"{bench.receiver}/reset")


async def wait_for_hits(bench: Bench, name: str, count: int, wait_s: float) -> dict[str, Any]:
    """The receiver's stats of ``name`` once it has ``count`` hits (or at the timeout)."""
    deadline = time.monotonic() + wait_s
    while True:
        stats: dict[str, Any] = await receiver_get(bench, f"/stats/{name}")
        if stats["count"] >= count or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


# --- load -------------------------------------------------------------------------------


async def closed_loop(
    url: str, body: dict[str, Any] | None, clients: int, seconds: float
) -> tuple[list[float], int, int]:
    """Each client sends its next request when the last is answered: (latencies, failed,
    successful emits including those answered after ``seconds``)."""
    latencies: list[float] = []
    failed = ok = 0
    deadline = time.perf_counter() + seconds
    payload = json.dumps(body).encode() if body is not None else None

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failed, ok
        while (started := time.perf_counter()) < deadline:
            async with session.post(url, data=payload, headers=AUTH) as response:
                data = await response.json()
            good = response.status == 200 and not data.get("errors")
            good = good and not data["data"]["emitEvent"]["errors"]
            ok += good
            failed += not good
            if good:
                latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, failed, ok


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


async def wrk(bench: Bench, url: str, clients: int, seconds: float) -> dict[str, Any]:
    script = bench.tmp / "emit.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(json.dumps(EMIT)), token=TOKEN))
    args = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    return parse_wrk(output.decode())


async def load(bench: Bench, base: str, clients: int, seconds: float) -> dict[str, Any]:
    """One figure: warm-up, then ``seconds`` of emitEvent from ``clients`` clients."""
    url = f"{base}/graphql"
    if bench.use_wrk:
        warm = await wrk(bench, url, clients, bench.plan.warmup)
        figure = await wrk(bench, url, clients, seconds)
        figure["emitted"] = warm["requests"] + figure["requests"]
        return figure
    _, _, warm_ok = await closed_loop(url, EMIT, clients, bench.plan.warmup)
    latencies, failed, ok = await closed_loop(url, EMIT, clients, seconds)
    figure = load_figure(latencies, seconds, failed)
    figure["emitted"] = warm_ok + ok
    return figure


# --- figures ----------------------------------------------------------------------------


def hooks(bench: Bench, prefix: str, count: int = 3) -> dict[str, str]:
    return {f"{prefix}{i}": f"{bench.receiver}/hook/{prefix}{i}" for i in range(count)}


async def ingest_bare(bench: Bench) -> dict[str, Any]:
    port = free_port()
    process = await spawn(bench, sys.executable, str(HERE / "peers.py"), "bare", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{base}/graphql")
        return {str(c): await load(bench, base, c, bench.plan.seconds[c]) for c in CLIENTS}
    finally:
        await stop(process)


async def ingest_tocsin(bench: Bench, delivery: bool) -> dict[str, Any]:
    flags = () if delivery else ("--no-worker",)
    data_dir = bench.tmp / f"ingest-{'delivery' if delivery else 'api'}"
    figures = {}
    async with tocsin(bench, "serve", data_dir, *flags) as base:
        urls = hooks(bench, "in")
        await add_webhooks(base, urls)
        for clients in CLIENTS:
            await receiver_reset(bench)
            figure = await load(bench, base, clients, bench.plan.seconds[clients])
            ended = time.monotonic()
            if delivery:
                figure.update(await delivered(bench, list(urls), figure["emitted"], ended))
            figures[str(clients)] = figure
    return figures


async def delivered(bench: Bench, names: list[str], emitted: int, ended: float) -> dict[str, Any]:
    """Every channel's hits once each has one per emit; when the last arrived after the load."""
    stats = [await wait_for_hits(bench, name, emitted, wait_s=120) for name in names]
    last = max((s["last"] or ended) for s in stats)
    return {
        "expected": emitted * len(names),
        "delivered": sum(s["count"] for s in stats),
        "last_delivery_after_s": round(max(0.0, last - ended), 3),
    }


def batch_inputs(call: int, per_call: int) -> list[dict[str, str]]:
    return [{"type": "deploy_succeeded", "title": f"bench {call}-{i}"} for i in range(per_call)]


async def batch(bench: Bench) -> dict[str, Any]:
    per_call, calls = 1000, bench.plan.batch_calls
    data_dir = bench.tmp / "batch"
    async with tocsin(bench, "serve", data_dir, "--no-worker") as base:
        await add_webhooks(base, hooks(bench, "batch"))
        await graphql(base, EMIT_MANY, {"i": batch_inputs(-1, 10)})  # warm the caches
        bodies = [{"i": batch_inputs(call, per_call)} for call in range(calls)]
        started = time.perf_counter()
        for variables in bodies:
            data = await graphql(base, EMIT_MANY, variables)
            assert not data["data"]["emitEvents"]["errors"], data
        seconds = time.perf_counter() - started
    raw = raw_sqlite_rate(data_dir / "tocsin.db", bench.tmp / "raw.db", per_call, calls)
    return {
        "calls": calls,
        "per_call": per_call,
        "seconds": round(seconds, 3),
        "events_per_s": round(calls * per_call / seconds, 1),
        "raw_sqlite_events_per_s": raw,
    }


def _template_row(db: sqlite3.Connection, table: str) -> tuple[list[str], list[Any]]:
    cursor = db.execute(f"SELECT * FROM {table} LIMIT 1")  # noqa: S608  (our table names)
    return [d[0] for d in cursor.description], list(cursor.fetchone())


def _insert(table: str, columns: list[str]) -> str:
    marks = ",".join("?" * len(columns))
    return f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})"  # noqa: S608


def raw_sqlite_rate(template: Path, path: Path, per_call: int, calls: int) -> float:
    """The same rows (an event and three deliveries each, copied from rows Tocsin wrote)
    written with sqlite3 alone into Tocsin's schema, same pragmas, one transaction per call."""
    source = sqlite3.connect(template)
    schema = [s for (s,) in source.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    channels = source.execute("SELECT * FROM channel").fetchall()
    event_cols, event = _template_row(source, "event")
    delivery_cols, delivery = _template_row(source, "delivery")
    source.close()
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        db.execute(f"PRAGMA {pragma}")
    for sql in schema:
        db.execute(sql)
    marks = ",".join("?" * len(channels[0]))
    db.executemany(f"INSERT INTO channel VALUES ({marks})", channels)  # noqa: S608
    insert_event = _insert("event", event_cols)
    insert_delivery = _insert("delivery", delivery_cols)
    started = time.perf_counter()
    for _ in range(calls):
        events, deliveries = [], []
        for _ in range(per_call):
            event[0] = uuid.uuid4().hex
            events.append(tuple(event))
            for channel in channels:
                values = dict(zip(delivery_cols, delivery, strict=True))
                values |= {"id": uuid.uuid4().hex, "event_id": event[0], "channel_id": channel[0]}
                deliveries.append(tuple(values.values()))
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert_event, events)
        db.executemany(insert_delivery, deliveries)
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return round(calls * per_call / seconds, 1)


async def queue_deliveries(bench: Bench, data_dir: Path, urls: dict[str, str], count: int) -> None:
    """``count`` events (one delivery per channel each) stored by an API-only server."""
    async with tocsin(bench, "serve", data_dir, "--no-worker") as base:
        await add_webhooks(base, urls)
        for call in range(0, count, 1000):
            await graphql(base, EMIT_MANY, {"i": batch_inputs(call, min(1000, count - call))})


def rate(stats: dict[str, Any]) -> float:
    """Hits per second between the receiver's first and last hit of one name."""
    span = (stats["last"] or 0) - (stats["first"] or 0)
    return round((stats["count"] - 1) / span, 1) if span > 0 and stats["count"] > 1 else 0.0


async def drain(bench: Bench, name: str, urls: dict[str, str], watched: str) -> float:
    """Queue the deliveries, start ``tocsin worker``, and the rate ``watched`` receives at."""
    count = bench.plan.deliveries
    data_dir = bench.tmp / name
    await queue_deliveries(bench, data_dir, urls, count)
    await receiver_reset(bench)
    async with tocsin(bench, "worker", data_dir):
        stats = await wait_for_hits(bench, watched, count, wait_s=300)
    if stats["count"] < count:
        bench.notes.append(f"{name}: only {stats['count']}/{count} delivered")
    return rate(stats)


async def baseline_sender(bench: Bench, role: str) -> float:
    count = bench.plan.deliveries if role == "aiohttp" else bench.plan.deliveries // 2
    await receiver_reset(bench)
    url = f"{bench.receiver}/hook/{role}"
    process = await spawn(
        bench, sys.executable, str(HERE / "peers.py"), role, url, str(count), "32"
    )
    await process.wait()
    return rate(await receiver_get(bench, f"/stats/{role}"))


async def delivery(bench: Bench) -> dict[str, Any]:
    url = {"drain": f"{bench.receiver}/hook/drain"}
    return {
        "deliveries": bench.plan.deliveries,
        "tocsin_per_s": await drain(bench, "drain", url, "drain"),
        "aiohttp_per_s": await baseline_sender(bench, "aiohttp"),
        "apprise_per_s": await baseline_sender(bench, "apprise"),
    }


async def isolation(bench: Bench, alone: float) -> dict[str, Any]:
    urls = {"healthy": f"{bench.receiver}/hook/healthy", "hung": f"{bench.receiver}/hang/hung"}
    return {
        "alone_per_s": alone,
        "with_hanging_per_s": await drain(bench, "isolation", urls, "healthy"),
    }


async def latency(bench: Bench) -> dict[str, Any]:
    """Emits at a steady rate (open loop); from each answer to its event's first hit."""
    plan = bench.plan
    answered: dict[str, float] = {}
    async with tocsin(bench, "serve", bench.tmp / "latency") as base:
        await add_webhooks(base, {"lat": f"{bench.receiver}/hook/lat"})
        await receiver_reset(bench)
        async with aiohttp.ClientSession() as session:

            async def emit() -> None:
                async with session.post(f"{base}/graphql", json=EMIT, headers=AUTH) as response:
                    data = await response.json()
                answered[data["data"]["emitEvent"]["event"]["id"]] = time.monotonic()

            tasks, started = [], time.monotonic()
            total = int(plan.latency_rate * plan.latency_seconds)
            for n in range(total):
                await asyncio.sleep(max(0.0, started + n / plan.latency_rate - time.monotonic()))
                tasks.append(asyncio.create_task(emit()))
            await asyncio.gather(*tasks)
        await wait_for_hits(bench, "lat", total, wait_s=60)
        arrivals = await receiver_get(bench, "/arrivals/lat")
    # A hit can come before the emitter has read its answer: that is no wait at all.
    waits = [max(0.0, arrivals[i] - t) * 1000 for i, t in answered.items() if i in arrivals]
    return {
        "rate_per_s": plan.latency_rate,
        "seconds": plan.latency_seconds,
        "events": total,
        "delivered": len(waits),
        "p50": round(percentile(waits, 0.50), 2),
        "p99": round(percentile(waits, 0.99), 2),
    }


# --- main -------------------------------------------------------------------------------


async def measure(bench: Bench) -> dict[str, Any]:
    ingest = {
        "bare_strawberry": await ingest_bare(bench),
        "api_only": await ingest_tocsin(bench, delivery=False),
        "with_delivery": await ingest_tocsin(bench, delivery=True),
    }
    results: dict[str, Any] = {"ingest": ingest, "batch": await batch(bench)}
    results["delivery"] = await delivery(bench)
    results["e2e_latency_ms"] = await latency(bench)
    results["isolation"] = await isolation(bench, results["delivery"]["tocsin_per_s"])
    results["peak_rss_mb"] = round(bench.peak_rss_kb / 1024, 1)
    return results


def machine(bench: Bench) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "pinned": bench.pinned,
        "load_generator": "wrk" if bench.use_wrk else "aiohttp",
        "quick": bench.plan.quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short figures (under 3 minutes)")
    parser.add_argument("--json", type=Path, help="write every figure and ratio here")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load generator")
    args = parser.parse_args(argv)
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinned = {0, 1} <= cores
    if pinned:
        os.sched_setaffinity(0, {1})  # the load and the receiver; servers get core 0
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    port = free_port()
    bench = Bench(
        QUICK if args.quick else FULL,
        f"http://127.0.0.1:{port}",
        pinned,
        bool(shutil.which("wrk")) and not args.no_wrk,
        tmp,
    )
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "peers.py"), "receiver", str(port)
    )
    try:
        await wait_until_up(f"{bench.receiver}/stats/none")
        report = build_report(await measure(bench), machine(bench) | {"notes": bench.notes})
    finally:
        await stop(receiver)
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(report))
    for note in bench.notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    asyncio.run(main())
