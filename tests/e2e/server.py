"""`tocsin serve` as a real subprocess for end-to-end tests.

    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    async with TocsinServer(env, log_dir=tmp_path) as server:    # waits for /readyz 200
        await server.ok("mutation { ... }")                      # as the bootstrap ADMIN
        server.kill()                                            # kill -9, no clean-up at all
        await server.start()                                     # again, on the same data
        await server.stop_cleanly()                              # SIGTERM, a clean shutdown

The process is always killed when the block is left. Its stdout and stderr go to a
log file per start (``server.log_path``); ``server.log_tail()`` is for failure messages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
from cryptography.fernet import Fernet

from tests.peers import HttpReceiver, RecordedRequest
from tests.support import PG_URL, new_database_url

LOOPBACK = "127.0.0.1"
ADMIN_TOKEN = "tcs_e2e-bootstrap-admin-token-0123456789"
SIGNING_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def e2e_database_url(template: str, data_dir: Path) -> str | None:
    """A fresh PostgreSQL database when TOCSIN_TEST_DATABASE_URL is set; None (the embedded
    SQLite default in the data dir) otherwise."""
    if not PG_URL:
        return None
    return await new_database_url(template, data_dir)


def server_env(data_dir: Path, *, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The TOCSIN_* variables of one installation (the same keys and data on every start)."""
    env = {
        "TOCSIN_DATA_DIR": str(data_dir),
        "TOCSIN_SECRET_KEYS": Fernet.generate_key().decode(),
        "TOCSIN_BOOTSTRAP_TOKEN": ADMIN_TOKEN,
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "TOCSIN_DELIVERY_TIMEOUT": "2",
        "TOCSIN_RETRY_BASE_DELAY": "0.2",
        # A killed worker's half-sent delivery is taken over after 2 + 6 s, not 2 + 15 s.
        "TOCSIN_LEASE_GRACE": "6",
    }
    if database_url:
        env["TOCSIN_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def tocsin_command() -> list[str]:
    script = Path(sys.executable).with_name("tocsin")
    if script.exists():
        return [str(script)]
    found = shutil.which("tocsin")
    return [found] if found else [sys.executable, "-m", "tocsin.cli"]


class PortTaken(Exception):
    """The port chosen for the server was taken before it could bind it."""


class TocsinServer:
    """One installation of ``tocsin serve``, started and stopped as a real process."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_dir: Path,
        ready_timeout: float = 30.0,
        args: tuple[str, ...] = (),
    ) -> None:
        self.env = env
        self.log_dir = log_dir
        self.ready_timeout = ready_timeout
        self.args = args
        self.port = 0
        self.starts = 0
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, token: str = ADMIN_TOKEN, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client for this server (the caller closes it)."""
        kwargs.setdefault("timeout", 30.0)
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    async def start(self) -> None:
        """Start ``tocsin serve`` on a free port; return once /readyz answers 200."""
        assert not self.running, "the server is already running"
        for attempt in range(3):
            self._spawn()
            try:
                await self._wait_ready()
                return
            except PortTaken:
                self.kill()
                if attempt == 2:
                    raise
            except BaseException:
                self.kill()
                raise

    def _spawn(self) -> None:
        self.starts += 1
        self.port = free_port()
        self.log_path = self.log_dir / f"tocsin-serve-{self.starts}.log"
        self._close_log()
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
        env |= self.env
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            [*tocsin_command(), "serve", "--host", LOOPBACK, "--port", str(self.port), *self.args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None and "address already in use" in self.log_tail().lower():
                    raise PortTaken(self.port)  # taken since free_port(): try another
                if code is not None:
                    raise AssertionError(
                        f"tocsin serve exited with {code} before it was ready\n{self.log_tail()}"
                    )
                try:
                    response = await client.get("/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"tocsin serve was not ready within {self.ready_timeout}s "
                        f"(last /readyz: {last})\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: the process gets no chance to finish anything."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None
        self._close_log()

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait for a clean exit; killed if it takes longer than ``timeout``."""
        if self._process is None:
            return None
        process = self._process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        code = process.poll()
        self.kill()
        return code

    async def stop_cleanly(self, timeout: float = 15.0) -> None:
        """SIGTERM, and check the server shut down cleanly (uvicorn re-raises the signal
        after its graceful shutdown, so -SIGTERM is a clean exit too)."""
        code = await self.stop(timeout)
        tail = self.log_tail(200)
        assert code in (0, -signal.SIGTERM), f"tocsin serve exited with {code}\n{tail}"
        assert "Application shutdown complete" in tail, tail

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the current (or last) start's console output."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(["--- tocsin serve log (tail) ---", *text[-lines:]])

    def logs(self) -> str:
        """The console output of every start so far."""
        parts = []
        for number in range(1, self.starts + 1):
            path = self.log_dir / f"tocsin-serve-{number}.log"
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str = ADMIN_TOKEN,
    ) -> dict[str, Any]:
        async with self.client(token) as client:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables or {}}
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str = ADMIN_TOKEN,
    ) -> dict[str, Any]:
        """The data of an operation that must succeed without any GraphQL error."""
        body = await self.gql(query, variables, token=token)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


SAVE_WEBHOOK = """
mutation($input: WebhookChannelInput!) {
  saveWebhookChannel(input: $input) {
    channel { id configured maxRetries }
    errors { field code message }
  }
}"""

CREATE_TOKEN = """
mutation($name: String!, $role: Role!) {
  createApiToken(name: $name, role: $role) { token errors { code message } }
}"""

STATUS = "{ notificationStatus { pendingDeliveries failedDeliveries } }"

DELIVERY_COUNTS = """
query {
  notificationStatus { pendingDeliveries failedDeliveries }
  delivered: deliveries(first: 1, filter: {status: DELIVERED}) { totalCount }
}"""

EMIT = """
mutation($input: EmitEventInput!) {
  emitEvent(input: $input) { event { id } deduplicated errors { field code message } }
}"""


async def save_webhook(server: TocsinServer, url: str, **fields: Any) -> str:
    """A signed webhook channel to ``url`` (so every request carries ``webhook-id``)."""
    data = await server.ok(
        SAVE_WEBHOOK,
        {"input": {"name": "e2e receiver", "url": url, "signingSecret": SIGNING_SECRET, **fields}},
    )
    payload = data["saveWebhookChannel"]
    assert payload["errors"] == [], payload["errors"]
    assert payload["channel"]["configured"] is True
    channel_id: str = payload["channel"]["id"]
    return channel_id


async def create_token(server: TocsinServer, name: str, role: str) -> str:
    data = await server.ok(CREATE_TOKEN, {"name": name, "role": role})
    payload = data["createApiToken"]
    assert payload["errors"] == [] and payload["token"], payload
    token: str = payload["token"]
    return token


def accepted_event_id(response: httpx.Response) -> str:
    """The event id of an emitEvent call that succeeded in every way; AssertionError otherwise."""
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:500]}"
    body = response.json()
    assert "errors" not in body, body["errors"]
    payload = body["data"]["emitEvent"]
    assert payload["errors"] == [], payload["errors"]
    assert payload["deduplicated"] is False, payload
    event_id: str = payload["event"]["id"]
    assert event_id
    return event_id


def delivered_events(requests: Iterable[RecordedRequest]) -> dict[str, str]:
    """``webhook-id`` → ``event_id`` of webhook requests, checking what a receiver relies on:
    the header is the body's delivery id, and one delivery id always carries one event."""
    seen: dict[str, str] = {}
    _add_delivered(seen, requests)
    return seen


def _add_delivered(seen: dict[str, str], requests: Iterable[RecordedRequest]) -> None:
    """``delivered_events`` of ``requests`` added to ``seen``, checked the same way."""
    for request in requests:
        body = request.json()
        delivery_id = request.headers.get("webhook-id")
        assert delivery_id, f"a webhook request without webhook-id: {request.headers}"
        assert body["id"] == delivery_id, (body["id"], delivery_id)
        first = seen.setdefault(delivery_id, body["event_id"])
        assert first == body["event_id"], f"delivery {delivery_id} carried two events"


def answered_requests(
    receiver: HttpReceiver, path: str, *, since: int = 0, unanswered: range = range(0)
) -> list[RecordedRequest]:
    """The receiver's requests to ``path`` from index ``since`` on, leaving out the indices
    in ``unanswered`` (requests a crash cut off before the receiver answered them)."""
    return [
        request
        for index, request in enumerate(receiver.requests)
        if index >= since and index not in unanswered and request.path == path
    ]


async def wait_for_events(
    receiver: HttpReceiver,
    expected: set[str],
    *,
    path: str,
    since: int = 0,
    unanswered: range = range(0),
    timeout: float = 40.0,
    server: TocsinServer | None = None,
) -> dict[str, str]:
    """Wait until the receiver's answered requests to ``path`` carry every event id in
    ``expected``; answers ``webhook-id`` → ``event_id`` of those requests."""
    deadline = time.monotonic() + timeout
    # Only the requests that arrived since the last look are parsed: parsing all of them
    # every 0.1 s, in the receiver's own event loop, slowed the receiver down (quadratic).
    seen: dict[str, str] = {}
    looked = since
    while True:
        _add_delivered(seen, answered_requests(receiver, path, since=looked, unanswered=unanswered))
        looked = len(receiver.requests)  # the receiver shares this loop: nothing came since
        missing = expected - set(seen.values())
        if not missing:
            return seen
        if time.monotonic() > deadline:
            requests = answered_requests(receiver, path, since=since, unanswered=unanswered)
            status: Any = "server not running"
            if server is not None and server.running:
                try:
                    status = (await server.gql(STATUS))["data"]
                except (httpx.HTTPError, AssertionError) as exc:
                    status = repr(exc)
            raise AssertionError(
                f"{len(missing)} of {len(expected)} accepted events were not delivered within "
                f"{timeout}s (e.g. {sorted(missing)[:5]}); the receiver answered {len(requests)} "
                f"requests for {len(set(seen.values()))} events; notificationStatus: {status}\n"
                + (server.log_tail() if server is not None else "")
            )
        await asyncio.sleep(0.1)


async def settled(
    server: TocsinServer, delivered: Callable[[], int], *, timeout: float
) -> dict[str, Any]:
    """Wait until the delivery log agrees with the receiver: nothing pending or failed, and
    as many deliveries DELIVERED as ``delivered()`` distinct ones reached the receiver."""
    deadline = time.monotonic() + timeout
    while True:
        data = await server.ok(DELIVERY_COUNTS)
        status = data["notificationStatus"]
        if (
            status["pendingDeliveries"] == 0
            and status["failedDeliveries"] == 0
            and data["delivered"]["totalCount"] == delivered()
        ):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the delivery log did not settle within {timeout}s: {data} "
                f"(the receiver got {delivered()} distinct deliveries)\n{server.log_tail()}"
            )
        await asyncio.sleep(0.2)
