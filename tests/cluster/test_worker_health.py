"""A worker process's own health (issue 12): /readyz turns 503 when its delivery loop
stalls on the database, and /metrics shows the queue as the database has it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import update

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.support import Api, eventually
from tocsin.storage.tables import DeliveryRow
from tocsin.storage.types import utcnow
from tocsin.worker_health import health_app


def client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://worker.test")


@asynccontextmanager
async def database_blocked(url: str) -> AsyncIterator[None]:
    """Another client holds the lock the worker's next turn needs: the write lock on
    SQLite, an exclusive lock on the delivery table on PostgreSQL. Reads still answer."""
    if url.startswith("sqlite"):
        # In a thread: waiting here for the worker's transaction to end must not block
        # the event loop that transaction needs to end.
        path = url.split("///", 1)[1]
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        await asyncio.to_thread(connection.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await asyncio.to_thread(connection.execute, "ROLLBACK")
            connection.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    transaction = pg.transaction()
    await transaction.start()
    await pg.execute("LOCK TABLE delivery IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await pg.close()


async def test_a_stalled_loop_is_not_ready_and_recovers(live: Api, database_url: str) -> None:
    # given the worker's health app, with a heartbeat of one second
    app = health_app(live.services.worker, live.services.db, heartbeat=1.0)
    async with client(app) as health:
        assert (await health.get("/healthz")).status_code == 200
        assert (await health.get("/readyz")).json() == {"ready": True}
        # when the database blocks the loop's next turn (but still answers a ping)
        async with database_blocked(database_url):

            async def stalled() -> httpx.Response | None:
                response = await health.get("/readyz")
                return response if response.status_code == 503 else None

            response = await eventually(stalled, timeout=5, interval=0.2)
            # then it says the loop is stuck, not that the database is down
            [problem] = response.json()["problems"]
            assert problem.startswith("delivery loop has not turned")
            assert (await health.get("/healthz")).status_code == 200
        # and once the database lets go, it is ready again

        async def ready() -> bool:
            return (await health.get("/readyz")).status_code == 200

        await eventually(ready, timeout=10, interval=0.2)


@dataclass
class _Stopped:
    running: bool = False
    last_turn: float = 0.0


async def test_a_stopped_worker_is_not_ready(api: Api) -> None:
    app = health_app(_Stopped(), api.services.db)
    async with client(app) as health:
        response = await health.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["worker is not running"]


async def test_metrics_show_queue_depth_and_the_oldest_due_age(
    api: Api, receiver: HttpReceiver
) -> None:
    # given two deliveries due, the older for two minutes, and no worker sending them
    await save(api, "Webhook", {"url": receiver.url("/m")})
    await emit(api)
    async with api.services.db.write() as session:
        await session.execute(
            update(DeliveryRow).values(next_attempt_at=utcnow() - timedelta(minutes=2))
        )
    await emit(api)
    app = health_app(_Stopped(running=True, last_turn=time.monotonic()), api.services.db)
    # when the worker's metrics are scraped
    async with client(app) as health:
        response = await health.get("/metrics")
    # then they show both, fresh from the database
    assert response.status_code == 200
    lines = dict(
        line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#")
    )
    assert float(lines["tocsin_delivery_queue_depth"]) == 2
    assert 120 <= float(lines["tocsin_delivery_oldest_due_seconds"]) < 180
    assert "tocsin_lease_recoveries_total" in lines
