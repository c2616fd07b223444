"""How fast the worker drains a backlog to one webhook, against the sender alone.

    python bench/drain.py [--events 3000] [--database-url URL]

baseline  the webhook sender called directly, as many at once as the worker's
          per-channel limit: the most the worker could reach
drain     `events` deliveries queued first, then the worker started: deliveries/s
Printed as a ratio (drain / baseline); the machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import make_settings, migrate_template, new_database_url, start_api
from tocsin.channels.base import ChannelSender, Destination, Message, SendContext
from tocsin.channels.registry import sender_for
from tocsin.worker import Worker, WorkerLimits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def send_many(
    sender: ChannelSender,
    destination: Destination,
    message: Message,
    context: SendContext,
    count: int,
) -> None:
    for _ in range(count):
        assert (await sender.send(destination, message, context)).ok


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    total = args.events - args.events % 1000 or 1000

    received: set[str] = set()
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.add((await request.json())["event_id"])
        if len(received) >= total:
            done.set()
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/hook"

    tmp = Path(tempfile.mkdtemp(prefix="tocsin-drain-"))
    database_url = args.database_url or await new_database_url(
        await migrate_template(tmp), tmp / "data"
    )
    limits = WorkerLimits()
    async for api in start_api(make_settings(tmp / "data", database_url), run_worker=False):
        context = api.services.send_context
        destination = Destination("c", "WEBHOOK", "bench", {}, {"url": url})
        message = Message("d", "e", "test", "INFO", "bench", None, {}, datetime.now(UTC))
        sender = sender_for("WEBHOOK")

        started = time.perf_counter()
        await asyncio.gather(
            *(
                send_many(sender, destination, message, context, total // limits.per_channel)
                for _ in range(limits.per_channel)
            )
        )
        baseline = total / (time.perf_counter() - started)

        await api.ok(
            "mutation($u: String) { saveWebhookChannel(input: {url: $u}) { errors { code } } }",
            {"u": url},
        )
        for batch in range(total // 1000):
            inputs = [{"type": "test", "title": f"{batch}-{i}"} for i in range(1000)]
            await api.ok(
                "mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) { errors { code } } }",
                {"i": inputs},
            )
        worker = Worker(api.services, limits)
        started = time.perf_counter()
        await worker.start()
        await asyncio.wait_for(done.wait(), timeout=300)
        drain = total / (time.perf_counter() - started)
        await worker.stop()
    await runner.cleanup()
    print(f"{total} deliveries to one webhook, {args.database_url or 'SQLite'}")
    print(f"  sender alone  {baseline:7.0f}/s  ({limits.per_channel} at once)")
    print(f"  worker drain  {drain:7.0f}/s")
    print(f"  ratio         {drain / baseline:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
