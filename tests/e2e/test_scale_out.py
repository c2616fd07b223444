"""`tocsin serve --no-worker` and `tocsin worker` as separate processes on PostgreSQL: one
of each, then (issue 12, acceptances 1 and 4) two APIs and three workers started together
on an empty database, one of them killed midway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.server import (
    TocsinServer,
    accepted_event_id,
    delivered_events,
    e2e_database_url,
    save_webhook,
    server_env,
    settled,
    tocsin_command,
    wait_for_events,
)
from tests.e2e.workers import emit_many, workers
from tests.peers import HttpReceiver
from tests.support import PG_URL, TEST_DB_PREFIX, _pg_execute

pytestmark = pytest.mark.skipif(not PG_URL, reason="scale-out needs PostgreSQL")

EMIT = """mutation($i: EmitEventInput!) { emitEvent(input: $i) {
  event { id } deduplicated errors { code } } }"""


async def test_api_without_worker_accepts_and_a_worker_process_delivers(
    template_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    env = server_env(tmp_path, database_url=await e2e_database_url(template_database, tmp_path))
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as api:
        await save_webhook(api, receiver.url("/scaled"))
        async with api.client() as client:
            responses = [
                await client.post(
                    "/graphql",
                    json={"query": EMIT, "variables": {"i": {"type": "test", "title": f"e{i}"}}},
                )
                for i in range(20)
            ]
        accepted = {accepted_event_id(r) for r in responses}

        # the API process alone accepts but does not deliver
        await asyncio.sleep(1.5)
        assert receiver.requests_to("/scaled") == []

        # a worker process, sharing only the database, delivers every accepted event
        log = (tmp_path / "worker.log").open("wb")
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")} | env
        worker = subprocess.Popen(
            [*tocsin_command(), "worker"], env=worker_env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            seen = await wait_for_events(receiver, accepted, path="/scaled", timeout=30)
            assert set(seen.values()) == accepted
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 15) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
            log.close()


async def empty_database() -> str:
    """A PostgreSQL database with nothing in it, not even the migrations."""
    assert PG_URL
    name = f"{TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
    await _pg_execute(f"CREATE DATABASE {name}")
    return PG_URL.rsplit("/", 1)[0] + f"/{name}"


async def test_two_apis_and_three_workers_lose_nothing_and_send_once(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    env = server_env(tmp_path, database_url=await empty_database())
    apis = [TocsinServer(env, log_dir=tmp_path / f"api-{n}", args=("--no-worker",)) for n in (1, 2)]
    for api in apis:
        api.log_dir.mkdir()
    async with workers(env, tmp_path, 3) as started:
        try:
            # given two APIs and three workers started together on an empty database:
            # all of them come up (acceptance 4)
            for worker in started:
                worker.spawn()
            await asyncio.gather(*(api.start() for api in apis), *(w.wait_ready() for w in started))
            await save_webhook(apis[0], receiver.url("/cluster"))
            # when 600 events come in through both APIs and one worker is killed midway
            emits = asyncio.gather(
                *(emit_many(api, 300, f"via api {n}") for n, api in enumerate(apis))
            )
            await receiver.wait_for_requests(150, path="/cluster", timeout=30)
            started[0].kill()
            accepted = set().union(*await emits)
            assert len(accepted) == 600
            # then every one is delivered (acceptance 1)
            seen = await wait_for_events(receiver, accepted, path="/cluster", timeout=30)
            assert set(seen.values()) == accepted
            await settled(
                apis[1], lambda: len(delivered_events(receiver.requests_to("/cluster"))), timeout=20
            )
            # and 300 more without any fault are each delivered exactly once
            since = len(receiver.requests)
            more = set().union(
                *await asyncio.gather(
                    *(emit_many(api, 150, f"more {n}") for n, api in enumerate(apis))
                )
            )
            seen = await wait_for_events(receiver, more, path="/cluster", since=since, timeout=30)
            later = [r for r in receiver.requests[since:] if r.path == "/cluster"]
            ids = [r.headers["webhook-id"] for r in later]
            assert len(ids) == len(set(ids)) == 300
        finally:
            for api in apis:
                api.kill()
