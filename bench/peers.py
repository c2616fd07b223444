"""The processes bench/run.py starts besides Tocsin: a receiver, the bare Strawberry
baseline, and the two delivery baselines (raw aiohttp, Apprise). Each runs as
``python bench/peers.py ROLE ...`` so that it can be pinned to its own core.

receiver PORT        POST /hook/{name} records (event id, arrival), POST /hang/{name} never
                     answers; GET /stats/{name}, GET /arrivals/{name}, POST /reset
bare PORT            the emitEvent mutation's shape in plain Strawberry: caches, no database
aiohttp URL N C      N webhook-sized POSTs to URL, C at once, one shared session
apprise URL N C      N Apprise notifications to URL (json://), C tasks at once
"""

# No `from __future__ import annotations`: Strawberry reads the local classes' annotations.
import asyncio
import json
import sys
import time
import uuid
from collections import defaultdict

BODY = {
    "id": "0" * 32,
    "event_id": "0" * 32,
    "event_type": "deploy_succeeded",
    "priority": "INFO",
    "title": "bench",
    "detail": None,
    "metadata": {},
    "occurred_at": "2026-01-01T00:00:00+00:00",
    "sent_at": "2026-01-01T00:00:00+00:00",
    "tocsin_version": "0.1.0",
}


def run_receiver(port: int) -> None:
    """The webhook receiver every Tocsin figure and every delivery baseline posts to."""
    from aiohttp import web

    arrivals: dict[str, list[float]] = defaultdict(list)
    first_by_event: dict[str, dict[str, float]] = defaultdict(dict)

    async def hook(request: web.Request) -> web.Response:
        now = time.monotonic()
        name = request.match_info["name"]
        body = await request.read()
        arrivals[name].append(now)
        try:
            event_id = json.loads(body).get("event_id")
        except (ValueError, AttributeError):
            event_id = None
        if event_id:
            first_by_event[name].setdefault(event_id, now)
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="late")

    async def stats(request: web.Request) -> web.Response:
        times = arrivals.get(request.match_info["name"], [])
        first, last = (min(times), max(times)) if times else (None, None)
        return web.json_response({"count": len(times), "first": first, "last": last})

    async def by_event(request: web.Request) -> web.Response:
        return web.json_response(first_by_event.get(request.match_info["name"], {}))

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        first_by_event.clear()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    app.router.add_post("/hang/{name}", hang)
    app.router.add_get("/stats/{name}", stats)
    app.router.add_get("/arrivals/{name}", by_event)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_bare(port: int) -> None:
    """emitEvent's input and answer shape in plain Strawberry, with the parser and
    validation caches Tocsin's schema uses, and no database: the ceiling of the stack."""
    import strawberry
    import uvicorn
    from strawberry.asgi import GraphQL
    from strawberry.extensions import ParserCache, ValidationCache
    from strawberry.scalars import JSON

    @strawberry.input
    class EmitEventInput:
        type: str
        title: str
        detail: str | None = None
        metadata: JSON | None = None
        dedup_key: str | None = None
        idempotency_key: str | None = None

    @strawberry.type
    class Event:
        id: strawberry.ID
        type: str
        title: str

    @strawberry.type
    class UserError:
        field: list[str] | None
        code: str
        message: str

    @strawberry.type
    class EmitEventPayload:
        event: Event | None
        errors: list[UserError]

    @strawberry.type
    class Query:
        ok: bool = True

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        async def emit_event(self, input: EmitEventInput) -> EmitEventPayload:
            event = Event(id=strawberry.ID(uuid.uuid4().hex), type=input.type, title=input.title)
            return EmitEventPayload(event=event, errors=[])

    schema = strawberry.Schema(
        Query,
        Mutation,
        extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
    )
    app = GraphQL(schema, graphql_ide=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def send_aiohttp(url: str, count: int, concurrency: int) -> None:
    """The most a bare aiohttp client gets through to the receiver."""
    import aiohttp

    body = json.dumps(BODY, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    left = [count]

    async def one(session: aiohttp.ClientSession) -> None:
        while left[0] > 0:
            left[0] -= 1
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))


async def send_apprise(url: str, count: int, concurrency: int) -> None:
    """Apprise's json:// plugin, as a script using Apprise would send the same notices."""
    import apprise

    notifier = apprise.Apprise()
    notifier.add(url.replace("http://", "json://", 1))
    left = [count]

    async def one() -> None:
        while left[0] > 0:
            left[0] -= 1
            await notifier.async_notify(body="bench", title="bench")

    await asyncio.gather(*(one() for _ in range(concurrency)))


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "receiver":
        run_receiver(int(args[0]))
    elif role == "bare":
        run_bare(int(args[0]))
    elif role in {"aiohttp", "apprise"}:
        send = send_aiohttp if role == "aiohttp" else send_apprise
        asyncio.run(send(args[0], int(args[1]), int(args[2])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
