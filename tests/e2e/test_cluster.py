"""Graceful shutdown (issue 12, acceptance 3): `tocsin worker` and `tocsin serve` stopped by
SIGTERM under load finish the attempts under way, hand back the rest and exit 0. (Several
processes on PostgreSQL: tests/e2e/test_scale_out.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.server import (
    TocsinServer,
    e2e_database_url,
    save_webhook,
    server_env,
    wait_for_events,
)
from tests.e2e.workers import emit_many, workers
from tests.peers import HttpReceiver

SENDING = "{ deliveries(first: 1, filter: {status: SENDING}) { totalCount } }"
DELIVERY_TIMEOUT = 4.0


async def test_sigterm_under_load_finishes_attempts_and_hands_back_the_rest(
    template_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    # given a receiver that answers after 3 s (the delivery timeout is 4 s), a backlog of
    # 40 events and an API
    receiver.respond("/slow", hang=3.0)
    env = server_env(
        tmp_path,
        database_url=await e2e_database_url(template_database, tmp_path),
        TOCSIN_DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT),
    )
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as api:
        await save_webhook(api, receiver.url("/slow"))
        accepted = await emit_many(api, 40, "under load")
        async with workers(env, tmp_path, 2) as (first, second):
            # and a worker sending them, with its own health endpoints
            await first.start()
            assert (await first.get("/healthz")).status_code == 200
            in_flight = await receiver.wait_for_requests(4, path="/slow", timeout=10)
            assert "tocsin_delivery_queue_depth" in (await first.get("/metrics")).text
            # when it gets SIGTERM in the middle of its sends
            code, seconds = await first.terminate()
            # then it exits 0 within the delivery timeout and a few seconds
            assert code == 0, first.log_tail()
            assert seconds < DELIVERY_TIMEOUT + 4, seconds
            # and nothing is left SENDING: attempts under way finished and were recorded,
            # the deliveries it had claimed but not begun were handed back
            assert (await api.ok(SENDING))["deliveries"]["totalCount"] == 0
            # and another worker delivers every event afterwards
            receiver.respond("/slow", 200)
            await second.start()
            seen = await wait_for_events(receiver, accepted, path="/slow", timeout=30)
            assert set(seen.values()) == accepted
            code, _ = await second.terminate()
            assert code == 0, second.log_tail()
        # without sending again what was under way at the SIGTERM (it was finished)
        ids = [r.headers["webhook-id"] for r in receiver.requests_to("/slow")]
        assert len(ids) == len(set(ids)) == 40, (len(in_flight), len(ids), len(set(ids)))


async def test_serve_exits_0_on_sigterm_and_leaves_nothing_sending(
    template_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    # given `tocsin serve` with its worker sending to a receiver that answers after 3 s
    receiver.respond("/serve-slow", hang=3.0)
    env = server_env(
        tmp_path,
        database_url=await e2e_database_url(template_database, tmp_path),
        TOCSIN_DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT),
    )
    server = TocsinServer(env, log_dir=tmp_path)
    async with server:
        await save_webhook(server, receiver.url("/serve-slow"))
        await emit_many(server, 30, "serve under load")
        await receiver.wait_for_requests(4, path="/serve-slow", timeout=10)
        # when it gets SIGTERM
        started = time.monotonic()
        code = await server.stop(timeout=DELIVERY_TIMEOUT + 10)
        # then it shuts down cleanly and exits 0, within the delivery timeout and a bit
        assert code == 0, server.log_tail()
        assert time.monotonic() - started < DELIVERY_TIMEOUT + 5
        assert "Application shutdown complete" in server.logs()
    # and, looked at by an API alone, nothing is left SENDING
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as api:
        assert (await api.ok(SENDING))["deliveries"]["totalCount"] == 0
