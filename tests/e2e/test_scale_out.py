"""`tocsin serve --no-worker` and `tocsin worker` as separate processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import (
    TocsinServer,
    accepted_event_id,
    e2e_database_url,
    save_webhook,
    server_env,
    tocsin_command,
    wait_for_events,
)
from tests.peers import HttpReceiver
from tests.support import PG_URL

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
