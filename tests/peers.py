"""Real peers on loopback for tests: an HTTP receiver, SMTP servers and a local CA.

HttpReceiver: uvicorn serving a small ASGI app inside the test's event loop::

    async with HttpReceiver() as receiver:          # or HttpReceiver(ca=LocalCA()) for https
        receiver.respond("/hook", status=429, retry_after="7")
        receiver.respond("/slow", hang=5)
        receiver.respond_in_turn("/flaky", Reply(status=503), Reply(status=200))
        ... send to receiver.url("/hook") ...
        [request] = receiver.requests_to("/hook")
        request.json(), request.headers["content-type"], request.body

Unprogrammed paths answer 200 "ok". ``reset()`` forgets requests and programming.

SmtpServer: aiosmtpd in its own thread; ``mode="STARTTLS"`` requires STARTTLS
and AUTH (one username/password), ``"TLS"`` is implicit TLS, ``"NONE"`` is plain
SMTP without STARTTLS. Recipients ``tempfail@…`` get a 451, ``reject@…`` a 550::

    async with SmtpServer(ca=ca, mode="STARTTLS") as smtp:
        ... send to smtp.host, smtp.port as smtp.username / smtp.password ...
        [mail] = await smtp.wait_for_messages(1)
        mail.message["Subject"], mail.text_part, mail.html_part, mail.over_tls
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import trustme
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tocsin.sockets import tcp_socket

LOOPBACK = "127.0.0.1"


def _bound_socket() -> socket.socket:
    # Made as TCP with Nagle off, like Tocsin's own (tocsin.sockets): uvicorn writes a
    # response's head and body separately, and on a socket of protocol 0 every keep-alive
    # request then waited 40 ms for the sender's delayed ACK.
    sock = tcp_socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


class LocalCA:
    """A throwaway certificate authority, and a server certificate for localhost and 127.0.0.1."""

    def __init__(self) -> None:
        self.ca = trustme.CA(organization_name="Tocsin tests")
        self.server_cert = self.ca.issue_cert("localhost", LOOPBACK)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and nothing else)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return context

    def write_server_pem(self, directory: Path) -> Path:
        path = directory / "server.pem"
        self.server_cert.private_key_and_cert_chain_pem.write_to_path(str(path))
        return path


# The HTTP receiver


@dataclass(frozen=True, slots=True)
class Reply:
    """What the receiver answers on a path; ``hang`` waits that many seconds first."""

    status: int = 200
    body: bytes | str = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: str | int | None = None
    hang: float = 0.0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    "Lower-case names; repeated headers joined with ', '."
    raw_headers: list[tuple[str, str]]
    body: bytes
    client: tuple[str, int]
    "The sender's address and port: the same port twice means a pooled connection."
    received_at: datetime
    monotonic: float

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Records every request and answers as programmed per path (see the module docstring)."""

    def __init__(self, *, ca: LocalCA | None = None) -> None:
        self.ca = ca
        self.requests: list[RecordedRequest] = []
        self._replies: dict[str, list[Reply]] = {}
        self._closing = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ca else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/", *, host: str = LOOPBACK) -> str:
        scheme = "https" if self.ca else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def respond(
        self,
        path: str,
        status: int = 200,
        *,
        body: bytes | str = b"ok",
        headers: Mapping[str, str] | None = None,
        retry_after: str | int | None = None,
        hang: float = 0.0,
    ) -> None:
        """Answer every request to ``path`` this way from now on."""
        reply = Reply(status, body, dict(headers or {}), retry_after, hang)
        self._replies[path] = [reply]

    def respond_in_turn(self, path: str, *replies: Reply) -> None:
        """Answer requests to ``path`` with ``replies`` in order; the last one repeats."""
        self._replies[path] = list(replies)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        self.requests.clear()
        self._replies.clear()

    async def wait_for_requests(
        self, count: int, *, path: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """The requests (to ``path``) once there are at least ``count``; TimeoutError otherwise."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self.requests if path is None or r.path == path]

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def __aenter__(self) -> Self:
        sock = _bound_socket()
        self.port = sock.getsockname()[1]
        tls: dict[str, Any] = {}
        if self.ca:
            self._tmp = tempfile.TemporaryDirectory()
            pem = str(self.ca.write_server_pem(Path(self._tmp.name)))
            tls = {"ssl_certfile": pem, "ssl_keyfile": pem}
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            lifespan="off",
            proxy_headers=False,
            http="h11",
            ws="none",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            **tls,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the HTTP receiver did not start")
            await asyncio.sleep(0.005)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._tmp is not None:
            self._tmp.cleanup()

    def _next_reply(self, path: str) -> Reply:
        replies = self._replies.get(path)
        if not replies:
            return Reply()
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        client = scope.get("client") or ("", 0)
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for name, value in raw:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            raw_headers=raw,
            body=body,
            client=(client[0], int(client[1])),
            received_at=datetime.now(UTC),
            monotonic=time.monotonic(),
        )
        async with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

        reply = self._next_reply(scope["path"])
        if reply.hang:
            await self._hang(receive, reply.hang)
        content = reply.body.encode() if isinstance(reply.body, str) else reply.body
        answer_headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if reply.retry_after is not None:
            answer_headers.append((b"retry-after", str(reply.retry_after).encode()))
        answer_headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": answer_headers}
        )
        await send({"type": "http.response.body", "body": content})

    async def _hang(self, receive: Any, seconds: float) -> None:
        """Wait ``seconds``, or less if the client goes away or the receiver shuts down."""
        gone = asyncio.ensure_future(receive())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({gone, closing}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            for waiter in (gone, closing):
                waiter.cancel()
            await asyncio.gather(gone, closing, return_exceptions=True)


# SMTP servers


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated_as: str | None
    over_tls: bool

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text_part(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None and isinstance(part, EmailMessage)
        return str(part.get_content())

    @property
    def html_part(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None and isinstance(part, EmailMessage)
        return str(part.get_content())


class _Recorder:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("tempfail@"):
            return "451 4.3.0 Mailbox busy, try again later"
        if address.startswith("reject@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        content = envelope.original_content or b""
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=content,
            authenticated_as=login,
            over_tls=session.ssl is not None
            or (
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None
            ),
        )
        with self._server._lock:
            self._server.messages.append(mail)
        return "250 2.0.0 Message accepted for delivery"


class _SocketController(Controller):
    """aiosmtpd's Controller, listening on a socket bound beforehand (no port race)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(handler, hostname=LOOPBACK, port=sock.getsockname()[1], **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpServer:
    """An SMTP server for one test session (see the module docstring)."""

    def __init__(
        self,
        *,
        ca: LocalCA | None = None,
        mode: Literal["STARTTLS", "TLS", "NONE"] = "STARTTLS",
        username: str = "tocsin",
        password: str = "smtp-CANARY-p4ss",  # noqa: S107 - a test server's password
    ) -> None:
        if mode != "NONE" and ca is None:
            raise ValueError(f"mode {mode} needs a LocalCA")
        self.mode = mode
        self.username = username
        self.password = password
        self.host = LOOPBACK
        self.messages: list[ReceivedMail] = []
        self.failed_logins = 0
        self._lock = threading.Lock()
        sock = _bound_socket()
        self.port: int = sock.getsockname()[1]
        options: dict[str, Any] = {"server_hostname": "localhost", "authenticator": self._check}
        if mode == "STARTTLS":
            assert ca is not None
            options |= {
                "tls_context": ca.server_context(),
                "require_starttls": True,
                "auth_required": True,
                "auth_require_tls": True,
            }
        elif mode == "TLS":
            assert ca is not None
            # Implicit TLS: the whole session is encrypted, so AUTH needs no STARTTLS.
            options |= {"ssl_context": ca.server_context(), "auth_require_tls": False}
        self._controller = _SocketController(_Recorder(self), sock, **options)

    def _check(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if not ok:
            with self._lock:
                self.failed_logins += 1
        # handled=False: aiosmtpd answers the failure (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.failed_logins = 0

    async def wait_for_messages(self, count: int, *, timeout: float = 5.0) -> list[ReceivedMail]:
        """The received messages once there are at least ``count``; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                await asyncio.sleep(0.01)
        with self._lock:
            return list(self.messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
