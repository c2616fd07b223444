"""``tocsin worker --health-port N``: the worker process's own /healthz, /readyz and
/metrics, a tiny Starlette app under uvicorn in the worker's event loop.

/readyz is 200 while the database answers and the delivery loop began a turn within its
heartbeat (an idle loop turns every second; one stuck on the database does not), 503
with the problems otherwise. /metrics samples the queue from the database on each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tocsin import metrics
from tocsin.sockets import listen_socket
from tocsin.storage.claims import queue_depth
from tocsin.storage.database import Database
from tocsin.storage.queue_stats import oldest_due_age
from tocsin.storage.types import utcnow

__all__ = ["DEFAULT_HEARTBEAT", "health_app", "serve_health"]

DEFAULT_HEARTBEAT = 15.0
"Seconds the delivery loop may go without beginning a turn before /readyz says 503."


class _Loop(Protocol):
    @property
    def running(self) -> bool: ...
    @property
    def last_turn(self) -> float: ...


def health_app(worker: _Loop, db: Database, *, heartbeat: float = DEFAULT_HEARTBEAT) -> Starlette:
    """The health endpoints of one worker process."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        problems = []
        if not await db.ping():
            problems.append("database does not answer")
        if not worker.running:
            problems.append("worker is not running")
        else:
            idle = time.monotonic() - worker.last_turn
            if idle > heartbeat:
                problems.append(f"delivery loop has not turned for {idle:.0f}s")
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics_endpoint(request: Request) -> Response:
        await _sample_queue(db)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    return Starlette(routes=routes)


async def _sample_queue(db: Database) -> None:
    """Queue depth and the oldest due delivery's age, fresh; left as they were when the
    database does not answer within 2 s (/readyz says so)."""
    with contextlib.suppress(Exception):
        async with db.read() as session:
            async with asyncio.timeout(2):
                metrics.QUEUE_DEPTH.set(await queue_depth(session))
                metrics.OLDEST_DUE_SECONDS.set(await oldest_due_age(session, now=utcnow()))


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM belongs to the worker, which stops
    this server when it has stopped delivering."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_health(app: Starlette, *, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` on host:port for the block; a port that is taken is a configuration
    error, raised before the worker starts."""
    sock = listen_socket(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="tocsin-health")
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
