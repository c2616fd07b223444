"""Processes started together on one PostgreSQL database all come up: they take turns
migrating, and the first ADMIN token is created once.

To make "together" exact rather than a matter of luck, the test holds a lock in its own
transaction that every process's first write of its start-up waits for (an uncommitted
``alembic_version`` table, or the ``api_token`` table locked), waits until every process
is waiting, and then lets them all go at once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.server import (
    TocsinServer,
    accepted_event_id,
    save_webhook,
    server_env,
    tocsin_command,
    wait_for_events,
)
from tests.peers import HttpReceiver
from tests.pg_gate import gate
from tests.support import PG_URL, TEST_DB_PREFIX, _pg_execute, new_database_url

pytestmark = pytest.mark.skipif(not PG_URL, reason="several processes share only PostgreSQL")

EMIT = """mutation($i: EmitEventInput!) { emitEvent(input: $i) {
  event { id } deduplicated errors { code } } }"""
FIRST_TOKEN = re.compile(r"^\s+(tcs_\S+)$", re.MULTILINE)
# What alembic creates first: a process that finds no version table creates this one.
VERSION_TABLE = "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A new database with no table at all (not a copy of the migrated template)."""
    assert PG_URL is not None
    name = f"{TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
    await _pg_execute(f"CREATE DATABASE {name}")
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    await _pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")} | env
    with log.open("wb") as handle:
        return subprocess.Popen(
            [*tocsin_command(), *args],
            env=full_env | {"PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


async def _wait_for_line(process: subprocess.Popen[bytes], log: Path, line: str) -> None:
    for _ in range(600):
        text = log.read_text(errors="replace")
        if line in text:
            return
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {line!r}:\n{text}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {line!r} within 30 s:\n{log.read_text(errors='replace')}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_three_workers_and_an_api_started_together_on_an_empty_database(
    empty_database: str, tmp_path: Path, receiver: HttpReceiver
) -> None:
    env = server_env(tmp_path, database_url=empty_database)
    logs = [tmp_path / f"worker-{n}.log" for n in range(4)]
    processes: list[subprocess.Popen[bytes]] = []
    api = TocsinServer(env, log_dir=tmp_path, args=("--no-worker",), ready_timeout=60)
    try:
        # given an empty database, when three workers and an API start at the same moment
        # (each waits until all four have reached their migration)
        async with gate(empty_database, VERSION_TABLE) as gate_:
            processes = [_spawn(["worker"], env, log) for log in logs[:3]]
            api_ready = asyncio.create_task(api.start())
            await gate_.until_waiting(4)
        await api_ready
        # then every one of them comes up and stays up
        for worker, log in zip(processes, logs, strict=False):
            await _wait_for_line(worker, log, "worker running")
        # and an event accepted by the API is delivered by one of the workers
        await save_webhook(api, receiver.url("/started-together"))
        async with api.client() as client:
            variables = {"i": {"type": "test", "title": "up"}}
            response = await client.post("/graphql", json={"query": EMIT, "variables": variables})
        event_id = accepted_event_id(response)
        await wait_for_events(receiver, {event_id}, path="/started-together", timeout=20)
        assert all(worker.poll() is None for worker in processes)
        for worker in processes:
            worker.send_signal(signal.SIGTERM)
        for worker, log in zip(processes, logs, strict=False):
            assert await asyncio.to_thread(worker.wait, 15) == 0, log.read_text()
            assert "Traceback" not in log.read_text()
    finally:
        api.kill()
        _stop(processes)


async def test_two_serves_started_together_create_one_first_admin_token(
    template_database: str, tmp_path: Path
) -> None:
    # given a migrated database without tokens, and no TOCSIN_BOOTSTRAP_TOKEN
    database_url = await new_database_url(template_database, tmp_path)
    env = server_env(tmp_path, database_url=database_url)
    del env["TOCSIN_BOOTSTRAP_TOKEN"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = TocsinServer(env, log_dir=tmp_path / "a")
    second = TocsinServer(env, log_dir=tmp_path / "b")
    try:
        # when two `tocsin serve` start at the same moment (both wait to read api_token)
        async with gate(database_url, "LOCK TABLE api_token IN ACCESS EXCLUSIVE MODE") as gate_:
            both = asyncio.gather(first.start(), second.start())
            await gate_.until_waiting(2)
        await both
        # then exactly one of them printed a first ADMIN token, and it works on both
        printed = FIRST_TOKEN.findall(first.logs()) + FIRST_TOKEN.findall(second.logs())
        assert len(printed) == 1, printed
        for server in (first, second):
            data = await server.ok("{ apiTokens { name role } }", token=printed[0])
            assert data["apiTokens"] == [{"name": "admin", "role": "ADMIN"}]
    finally:
        first.kill()
        second.kill()
