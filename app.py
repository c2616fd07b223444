"""create_app(): the routes, and a lifespan that owns the database, HTTP client and worker."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tocsin import metrics
from tocsin.channels.registry import ChannelKind
from tocsin.errors import BodyTooLarge
from tocsin.heap import freeze_startup_heap
from tocsin.resolvers.context import Context, Principal
from tocsin.resolvers.sendtest import send_test
from tocsin.schema import schema, without_input_echo
from tocsin.schema.websocket import GraphQLSocket
from tocsin.services import Services, open_services
from tocsin.settings import Settings, load_settings
from tocsin.storage.enums import Role
from tocsin.storage.outbox_lock import OutboxLock
from tocsin.web.routes import GRAPHIQL_HTML, graphiql_headers, web_routes

log = logging.getLogger("tocsin.http")
access_log = logging.getLogger("tocsin.access")

MAX_BODY = 1024 * 1024


def _error(status: int, message: str, code: str) -> JSONResponse:
    _, _, content = _refused(status, message, code)
    return JSONResponse(content, status_code=status)


def _refused(status: int, message: str, code: str) -> Answer:
    content = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return status, {}, content


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused (without reading it whole) once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticate(request: Request) -> Principal | None:
    services: Services = request.app.state.services
    return await _principal(services, request.scope, request.headers.get("authorization", ""))


async def _principal(services: Services, scope: Scope, header: str) -> Principal | None:
    """Whose bearer token ``header`` carries (None: no valid token); the access log's
    actor is its name."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    principal = await services.tokens.resolve(token.strip())
    if principal is not None:
        scope.setdefault("state", {})["actor"] = principal.name
    return principal


Answer = tuple[int, dict[str, str], dict[str, Any]]
"An answer to a GraphQL POST: status, extra headers, the JSON body."


async def graphql_page(request: Request) -> Response:
    """GET /graphql: GraphiQL for a browser; anything else is told to POST. A POST never
    gets here: ``GraphQLPost`` answers it ahead of routing (the route still names POST,
    so the Allow header of a 405 tells the truth)."""
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(GRAPHIQL_HTML, headers=graphiql_headers())
    return _error(405, "Send GraphQL operations with POST.", "METHOD_NOT_ALLOWED")


async def graphql_post(
    services: Services,
    scope: Scope,
    *,
    authorization: str,
    declared_length: str,
    receive: Receive,
) -> Answer:
    """A GraphQL operation POSTed with these headers, its body read from ``receive``
    within MAX_BODY, run and answered."""
    if declared_length.isdigit() and int(declared_length) > MAX_BODY:
        return _refused(413, "The request body is larger than 1 MiB.", "PAYLOAD_TOO_LARGE")
    principal = await _principal(services, scope, authorization)
    if principal is None:
        return _refused(
            401, "Send a valid API token: Authorization: Bearer <token>.", "UNAUTHENTICATED"
        )
    try:
        body = await _read_asgi_body(receive)
    except BodyTooLarge:
        return _refused(413, "The request body is larger than 1 MiB.", "PAYLOAD_TOO_LARGE")
    try:
        payload = json.loads(body, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _refused(400, "The request body is not valid JSON.", "BAD_REQUEST")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return _refused(400, 'Send a JSON object with a "query" string.', "BAD_REQUEST")
    variables = payload.get("variables")
    operation_name = payload.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        return _refused(400, '"variables" must be a JSON object.', "BAD_REQUEST")
    if operation_name is not None and not isinstance(operation_name, str):
        return _refused(400, '"operationName" must be a string.', "BAD_REQUEST")
    context = Context(services=services, principal=principal)
    document = schema.direct.document(payload["query"], operation_name)
    if document is not None:  # an emit document executed before (schema/direct.py)
        result = await schema.direct.execute(
            document, variables=variables, context=context, operation_name=operation_name
        )
    else:
        result = await schema.execute(
            payload["query"],
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
        )
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [_formatted(error) for error in result.errors]
    status, headers = _refusal_status(result.errors)
    return status, headers, response


# Emits refused without storing anything carry these codes and extensions.retryAfter.
REFUSAL_STATUS = {"RATE_LIMITED": 429, "OVERLOADED": 503}


def _refusal_status(errors: list[GraphQLError] | None) -> tuple[int, dict[str, str]]:
    """HTTP 429/503 with Retry-After for a refused emit; 200 otherwise."""
    for error in errors or ():
        extensions = error.extensions or {}
        status = REFUSAL_STATUS.get(str(extensions.get("code")))
        if status is not None:
            return status, {"Retry-After": str(extensions.get("retryAfter", 1))}
    return 200, {}


def _not_json(constant: str) -> Any:
    """Python's json module reads NaN, Infinity and -Infinity; JSON has no such values."""
    raise ValueError(f"{constant} is not JSON")


def _formatted(error: GraphQLError) -> dict[str, Any]:
    """The error as the client sees it, without GraphQL's echo of the input's values."""
    formatted: dict[str, Any] = dict(error.formatted)
    formatted["message"] = without_input_echo(formatted["message"])
    return formatted


async def notifications_test_endpoint(request: Request) -> Response:
    """POST /api/notifications/test: sendTest for scripts."""
    principal = await authenticate(request)
    if principal is None:
        return JSONResponse({"error": "UNAUTHENTICATED"}, status_code=401)
    if principal.role not in {Role.EDITOR, Role.ADMIN}:
        return JSONResponse({"error": "FORBIDDEN"}, status_code=403)
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return JSONResponse({"error": "PAYLOAD_TOO_LARGE"}, status_code=413)
    try:
        payload = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "BAD_REQUEST", "message": "invalid JSON"}, status_code=400)
    if not isinstance(payload, dict):
        return JSONResponse({"error": "BAD_REQUEST", "message": "expected an object"}, 400)
    kind = None
    if payload.get("kind") is not None:
        try:
            kind = ChannelKind(str(payload["kind"]).upper())
        except ValueError:
            return JSONResponse(
                {
                    "error": "BAD_REQUEST",
                    "message": "kind must be one of "
                    + ", ".join(k.value.lower() for k in ChannelKind),
                },
                status_code=400,
            )
    channel_id = payload.get("channel_id")
    context = Context(services=request.app.state.services, principal=principal)
    outcomes, problems = await send_test(
        context, kind=kind, channel_id=str(channel_id) if channel_id else None
    )
    if problems:
        status = 409 if problems[0].code == "NO_CHANNEL_CONFIGURED" else 404
        return JSONResponse({"error": problems[0].code, "message": problems[0].message}, status)
    return JSONResponse(
        {
            "results": [
                {
                    "channel_id": o.channel.id,
                    "kind": o.channel.kind.lower(),
                    "name": o.channel.name,
                    "ok": o.result.ok,
                    "status_code": o.result.status_code,
                    "error": o.result.error,
                    "latency_ms": o.result.latency_ms,
                }
                for o in outcomes
            ]
        }
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    problems = []
    if not await services.db.ping():
        problems.append("database does not answer")
    worker = services.worker
    if request.app.state.run_worker and (worker is None or not worker.running):
        problems.append("worker is not running")
    if problems:
        return JSONResponse({"ready": False, "problems": problems}, status_code=503)
    return JSONResponse({"ready": True})


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class AccessLog:
    """One structured line per request: method, path, status, duration, token name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            elapsed = time.perf_counter() - started
            route = scope["path"] if scope["path"] in ROUTE_PATHS else "other"
            metrics.REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(route).observe(elapsed)
            access_log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "token": scope.get("state", {}).get("actor"),
                    }
                )
            )


class GraphQLPost:
    """POST /graphql straight to ``graphql_post``, past Starlette's routing, request and
    response objects and exception middleware (14 % of an emit's time under load);
    every other request goes on to ``app``. What those layers did for it is done here:
    the body read within its limit, the JSON answer, a 500 when it crashes."""

    def __init__(self, app: ASGIApp, starlette: Starlette) -> None:
        self.app = app
        self._starlette = starlette

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        authorization = declared_length = ""
        for name, value in scope["headers"]:
            # As Starlette's Headers.get: the first of a repeated header.
            if name == b"authorization" and not authorization:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and not declared_length:
                declared_length = value.decode("latin-1")
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            status, headers, content = await graphql_post(
                self._starlette.state.services,
                scope,
                authorization=authorization,
                declared_length=declared_length,
                receive=receive,
            )
            await _send_json(sending, status, headers, content)
        except Exception:
            if not started:  # as Starlette's ServerErrorMiddleware answers
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise


async def _read_asgi_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The request's body from ASGI messages, refused once it passes ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, headers: dict[str, str], content: Any) -> None:
    """``content`` as Starlette's JSONResponse would send it."""
    body = json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
    raw = [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", b"application/json"),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class TocsinApp(Starlette):
    """Starlette, with the access log outermost and POST /graphql taken before routing."""

    def build_middleware_stack(self) -> ASGIApp:
        return AccessLog(GraphQLPost(super().build_middleware_stack(), self))


ROUTE_PATHS = {"/graphql", "/healthz", "/readyz", "/metrics", "/api/notifications/test", "/"}


def create_app(
    settings: Settings | None = None,
    *,
    run_worker: bool = True,
    outbox_lock: OutboxLock | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """The app; its worker delivers under ``outbox_lock`` on SQLite when the caller holds it.
    ``freeze_heap``: once started, freeze what startup built (``tocsin.heap``; for the
    process that serves, not for a test that makes many apps)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            app.state.run_worker = run_worker
            worker = None
            if run_worker:
                from tocsin.worker import Worker

                worker = Worker(services, outbox_lock=outbox_lock)
                services.worker = worker
                await worker.start()
            if freeze_heap:
                freeze_startup_heap()
            try:
                yield
            finally:
                if worker is not None:
                    await worker.stop()

    routes = [
        Route("/graphql", graphql_page, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", GraphQLSocket()),  # subscriptions (graphql-transport-ws)
        Route("/api/notifications/test", notifications_test_endpoint, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *web_routes(),
    ]
    return TocsinApp(routes=routes, lifespan=lifespan)
