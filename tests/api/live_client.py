"""A small graphql-transport-ws client for tests (on the ``websockets`` package), and the
app served by a real uvicorn on loopback, in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tocsin.app import create_app
from tocsin.settings import Settings
from tocsin.sockets import tcp_socket

PROTOCOL = "graphql-transport-ws"
EVENTS = "subscription { events { id title type priority dedupKey } }"


class LiveClient:
    """One WebSocket connection speaking graphql-transport-ws."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.before_close: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message, skipping pings (answered)."""
        while True:
            async with asyncio.timeout(timeout):
                raw = await self.ws.recv()
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def init(self, payload: dict[str, Any] | None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(self, query: str = EVENTS, op_id: str = "1") -> None:
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The payload's event of the next ``next`` message (fails on anything else)."""
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"]["events"]
        return event

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """The close code the server sent; messages before it are kept in ``before_close``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.before_close.append(json.loads(await self.ws.recv()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def live_client(
    url: str, *, headers: dict[str, str] | None = None, token: str | None = None
) -> AsyncIterator[LiveClient]:
    """Connected; acknowledged first when ``token`` is given (as Authorization: Bearer)."""
    async with connect(url, subprotocols=[PROTOCOL], additional_headers=headers) as ws:  # type: ignore[list-item]
        client = LiveClient(ws)
        if token is not None:
            ack = await client.init({"Authorization": f"Bearer {token}"})
            assert ack["type"] == "connection_ack", ack
        yield client


class LiveServer:
    """The app under uvicorn on a loopback port: ``http_url`` and ``ws_url`` of /graphql."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings, run_worker=False)
        self._sock = tcp_socket(socket.AF_INET)  # Nagle off, as tocsin serve makes it
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
