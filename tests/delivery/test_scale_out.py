"""Scale-out on PostgreSQL: an API process without a worker and a worker process of its
own share one database; a commit in one wakes the other at once (LISTEN/NOTIFY)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.support import PG_URL, Api, make_settings, start_api
from tocsin.services import open_services
from tocsin.worker import Worker, WorkerLimits

pytestmark = pytest.mark.skipif(not PG_URL, reason="scale-out needs PostgreSQL")


@pytest.fixture
async def api_only(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    async for api in start_api(make_settings(tmp_path / "api", database_url), run_worker=False):
        yield api


async def test_a_worker_process_is_woken_by_an_emit_in_another(
    api_only: Api, tmp_path: Path, database_url: str, receiver: HttpReceiver
) -> None:
    # given a worker with services of its own that would poll only once a minute
    settings = make_settings(tmp_path / "worker", database_url)
    settings = settings.model_copy(update={"secret_keys": api_only.services.settings.secret_keys})
    async with open_services(settings) as services:
        worker = Worker(services, WorkerLimits(poll_seconds=60))
        await worker.start()
        try:
            await save(api_only, "Webhook", {"url": receiver.url("/scaled")})
            # when the API process (which runs no worker) accepts an event
            result = await emit(api_only)
            # then the other process delivers it long before its next poll
            [request] = await receiver.wait_for_requests(1, path="/scaled", timeout=10)
            assert request.json()["event_id"] == result["event"]["id"]
        finally:
            await worker.stop()
