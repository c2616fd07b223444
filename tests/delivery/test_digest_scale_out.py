"""Digests on PostgreSQL with several processes: writers that open the same digest at
once share it, and several workers (each with its scheduler) send each period's digest
once, with every event in exactly one digest (issue 9, and issue 12's acceptance 2)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.pg_gate import gate
from tests.support import PG_URL, Api, make_settings, start_api
from tocsin.resolvers.routing import route
from tocsin.services import open_services
from tocsin.storage.database import Database, create_engine
from tocsin.storage.ingest import NewEvent, write_events
from tocsin.storage.tables import DeliveryRow, DigestRow
from tocsin.storage.types import utcnow
from tocsin.worker import Worker, WorkerLimits

pytestmark = pytest.mark.skipif(not PG_URL, reason="scale-out needs PostgreSQL")

INTERVALS = {"MEDIUM": 2, "LOW": 1, "INFO": 1}


@pytest.fixture
async def api_only(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path / "api", database_url, digest_intervals=INTERVALS)
    async for api in start_api(settings, run_worker=False):
        yield api


async def start_workers(stack: AsyncExitStack, api: Api, tmp_path: Path, count: int) -> None:
    """``count`` workers, each with services (an engine, a scheduler) of its own."""
    for number in range(count):
        settings = make_settings(
            tmp_path / f"worker{number}", api.services.settings.database_url
        ).model_copy(
            update={
                "secret_keys": api.services.settings.secret_keys,
                "digest_intervals": INTERVALS,
            }
        )
        services = await stack.enter_async_context(open_services(settings))
        worker = Worker(services, WorkerLimits(poll_seconds=0.2))
        await worker.start()
        stack.push_async_callback(worker.stop)


def events_of(body: dict[str, Any]) -> list[str]:
    return [event["event_id"] for event in body["events"]]


async def test_twelve_medium_events_and_three_workers_make_one_message(
    api_only: Api, tmp_path: Path, receiver: HttpReceiver
) -> None:
    await save(api_only, "Webhook", {"url": receiver.url("/digest"), "mode": "DIGEST"})
    async with AsyncExitStack() as stack:
        await start_workers(stack, api_only, tmp_path, 3)
        # when twelve MEDIUM events arrive within one period
        ids = [
            (await emit(api_only, type="proposal_ready", title=f"p{n}"))["event"]["id"]
            for n in range(12)
        ]
        # then one message holds all twelve, and no worker sends another
        [request] = await receiver.wait_for_requests(1, path="/digest", timeout=10)
        assert events_of(request.json()) == ids
        await asyncio.sleep(1.5)
        assert len(receiver.requests_to("/digest")) == 1


async def test_events_joining_while_workers_close_digests_are_each_sent_once(
    api_only: Api, tmp_path: Path, receiver: HttpReceiver
) -> None:
    await save(api_only, "Webhook", {"url": receiver.url("/digest"), "mode": "DIGEST"})
    async with AsyncExitStack() as stack:
        await start_workers(stack, api_only, tmp_path, 3)

        async def emit_for(seconds: float, writer: int) -> list[str]:
            ids, deadline = [], asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < deadline:
                result = await emit(api_only, type="deploy_succeeded", title=f"w{writer}")
                ids.append(result["event"]["id"])
                await asyncio.sleep(0.01)
            return ids

        # when two writers emit LOW events (digests of one second) for three seconds
        batches = await asyncio.gather(emit_for(3.0, 1), emit_for(3.0, 2))
        emitted = {event_id for batch in batches for event_id in batch}

        # then every event reaches the receiver exactly once, in some digest
        async def all_arrived() -> Counter[str] | None:
            seen = Counter(e for r in receiver.requests_to("/digest") for e in events_of(r.json()))
            return seen if set(seen) >= emitted else None

        seen = await _eventually(all_arrived, timeout=15)
        assert set(seen) == emitted and set(seen.values()) == {1}
        # and one message per digest, whose events all show DELIVERED
        bodies = [r.json() for r in receiver.requests_to("/digest")]
        assert len({body["id"] for body in bodies}) == len(bodies)
        assert len({body["digest_id"] for body in bodies}) == len(bodies)

        async def settled() -> set[str] | None:
            async with api_only.services.db.read() as session:
                statuses = set((await session.scalars(select(DeliveryRow.status))).all())
            return statuses if statuses == {"DELIVERED"} else None

        await _eventually(settled, timeout=10)


async def _eventually(check: Any, *, timeout: float) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.1)


def medium_event(title: str) -> NewEvent:
    return NewEvent(
        type="proposal_ready",
        title=title,
        detail=None,
        metadata={},
        priority="MEDIUM",
        dedup_key=None,
        idempotency_key=None,
        source="test",
        occurred_at=utcnow(),
    )


async def test_two_writers_opening_the_same_digest_at_once_share_it(
    api_only: Api, database_url: str, receiver: HttpReceiver
) -> None:
    await save(api_only, "Webhook", {"url": receiver.url("/digest"), "mode": "DIGEST"})
    # given two processes' databases, and the digest table locked so that both wait
    writers = [Database(create_engine(database_url)) for _ in range(2)]

    async def write(db: Database, title: str) -> None:
        async with db.write() as session:
            await write_events(session, [medium_event(title)], now=utcnow(), matches=route)

    try:
        async with gate(database_url, "LOCK TABLE digest IN EXCLUSIVE MODE") as gate_:
            tasks = [asyncio.create_task(write(db, f"e{n}")) for n, db in enumerate(writers)]
            await gate_.until_waiting(2)
        # when both go at once, neither finding an open digest
        await asyncio.gather(*tasks)
    finally:
        for db in writers:
            await db.dispose()
    # then there is one digest, holding both
    async with api_only.services.db.read() as session:
        digests = (await session.scalars(select(DigestRow))).all()
        members = (await session.scalars(select(DeliveryRow))).all()
    [digest] = digests
    assert (digest.status, digest.event_count) == ("OPEN", 2)
    assert [m.digest_id for m in members] == [digest.id, digest.id]
    assert {m.status for m in members} == {"BATCHED"}
