"""`tocsin worker` as a real subprocess, with its own health port, for cluster tests.

worker = WorkerProcess(env, log_dir=tmp_path, name="w1")
await worker.start()                 # returns once its /readyz answers 200
await worker.metrics()               # the text of its /metrics
code, seconds = await worker.terminate()   # SIGTERM; exit code and time to exit
worker.kill()                        # SIGKILL
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import httpx

from tests.e2e.server import LOOPBACK, TocsinServer, free_port, tocsin_command

EMIT_MANY = """mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) {
  events { id } errors { code message } } }"""


class WorkerProcess:
    def __init__(self, env: dict[str, str], *, log_dir: Path, name: str = "worker") -> None:
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def spawn(self) -> None:
        """Start the process without waiting for it."""
        self.port = free_port()
        self._log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
        env |= self.env | {"PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            [*tocsin_command(), "worker", "--health-port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.health_url, timeout=2.0) as client:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise AssertionError(
                        f"the worker exited with {self._process.poll()}\n{self.log_tail()}"
                    )
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the worker was not ready in {timeout}s\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)

    async def start(self) -> None:
        self.spawn()
        await self.wait_ready()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.health_url, timeout=5.0) as client:
            return await client.get(path)

    async def terminate(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None if it did not exit within ``timeout``) and how long
        it took."""
        assert self._process is not None
        started = time.monotonic()
        self._process.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.to_thread(self._process.wait, timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join([f"--- {self.log_path.name} (tail) ---", *text[-lines:]])


@contextlib.asynccontextmanager
async def workers(
    env: dict[str, str], log_dir: Path, count: int
) -> AsyncIterator[list[WorkerProcess]]:
    made = [WorkerProcess(env, log_dir=log_dir, name=f"worker-{n}") for n in range(count)]
    try:
        yield made
    finally:
        for worker in made:
            worker.kill()


async def emit_many(api: TocsinServer, count: int, title: str, *, batch: int = 150) -> set[str]:
    """The ids of ``count`` accepted events of type ``test``."""
    ids: set[str] = set()
    for start in range(0, count, batch):
        numbers = range(start, min(count, start + batch))
        inputs = [{"type": "test", "title": f"{title} {n}"} for n in numbers]
        payload = (await api.ok(EMIT_MANY, {"i": inputs}))["emitEvents"]
        assert payload["errors"] == [], payload["errors"]
        ids |= {event["id"] for event in payload["events"]}
    return ids
