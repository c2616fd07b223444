"""The live `events` subscription through a real `tocsin serve` (the CLI's uvicorn must
accept the WebSocket upgrade on /graphql): subscribe, emit over HTTP, receive it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.live_client import live_client
from tests.e2e.server import ADMIN_TOKEN, TocsinServer, e2e_database_url, server_env

pytestmark = pytest.mark.timeout(60)


async def test_a_subscriber_of_tocsin_serve_gets_an_emitted_event(
    template_database: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as server:
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        async with live_client(url, token=ADMIN_TOKEN) as client:
            await client.subscribe()
            # the subscribe message races the first emit: emit until one arrives
            received = None
            for attempt in range(20):
                await server.ok(
                    'mutation($t: String!) { emitEvent(input: {type: "test", title: $t}) '
                    "{ event { id } } }",
                    {"t": f"from serve {attempt}"},
                )
                try:
                    received = await client.next_event(timeout=0.5)
                    break
                except TimeoutError:
                    continue
            assert received is not None, server.log_tail()
            assert received["title"].startswith("from serve ")
            assert received["type"] == "test" and received["priority"] == "INFO"
