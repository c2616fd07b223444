"""Guards of the HTTP and GraphQL surface: oversized bodies and documents, malformed
requests, masked internal errors, GraphiQL, health, readiness, metrics, access log."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.support import Api
from tocsin.app import create_app
from tocsin.resolvers import channels as channel_resolvers
from tocsin.resolvers.tokens import create_token
from tocsin.settings import Settings
from tocsin.sockets import tcp_socket
from tocsin.storage.enums import Role

MiB = 1024 * 1024
BIG = 20 * MiB
CHUNK = 64 * 1024
VIEWER = "{ viewer { name role } }"


def auth(api: Api, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or api.admin_token}"}


class CountingBody:
    """A 20 MB body sent as an async generator; counts how much the server pulled."""

    def __init__(self, total: int = BIG) -> None:
        self.total = total
        self.sent = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"x" * CHUNK


def assert_graphql_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    message: str = error["message"]
    return message


# -- bodies ------------------------------------------------------------------------------


async def test_big_body_with_content_length_is_refused_unread(api: Api) -> None:
    # given a 20 MB body announced by Content-Length
    body = CountingBody()
    stream = body.chunks()
    # when it is posted
    response = await api.client.post(
        "/graphql",
        content=stream,
        headers={**auth(api), "Content-Length": str(BIG), "Content-Type": "application/json"},
    )
    await stream.aclose()
    # then 413 with a GraphQL-shaped error, decided from the header alone
    assert_graphql_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body.sent <= CHUNK


async def test_big_chunked_body_is_refused_after_the_limit(api: Api) -> None:
    # given a 20 MB body without Content-Length (chunked)
    body = CountingBody()
    stream = body.chunks()
    # when it is posted
    response = await api.client.post("/graphql", content=stream, headers=auth(api))
    await stream.aclose()
    # then 413, and the server stopped reading just past 1 MiB
    assert_graphql_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body.sent <= MiB + 2 * CHUNK
    # and it still answers
    assert (await api.ok(VIEWER))["viewer"]["role"] == "ADMIN"


async def test_body_just_under_the_limit_is_read(api: Api) -> None:
    query = "{ viewer { name } }"
    padded = json.dumps({"query": query + " " * (MiB - 200)}).encode()
    assert len(padded) < MiB
    response = await api.client.post("/graphql", content=padded, headers=auth(api))
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["name"] == "admin"


# -- documents ---------------------------------------------------------------------------


def nested(depth: int) -> str:
    """A valid query ``depth`` fields deep: channels → lastDelivery → event → deliveries →
    channel → lastDelivery → …"""
    cycle = ["lastDelivery", "event", "deliveries", "channel"]
    fields = ["channels"] + [cycle[i % 4] for i in range(depth - 1)]
    return "query { " + " { ".join(fields) + " { id" + " }" * depth + " }"


async def test_deep_query_is_refused(api: Api) -> None:
    # given a 50-deep query, when it is sent, then a GraphQL error and no data
    body = await api.gql(nested(50))
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"] == "The operation is 50 fields deep; the depth limit is 10."
    # while a query within the limit runs
    assert (await api.ok(nested(9)))["channels"] == []


async def test_many_aliases_are_refused(api: Api) -> None:
    # given 1000 aliases (short enough to pass the token limit), then a GraphQL error
    query = "query { " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"
    body = await api.gql(query)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"] == "The operation has 1000 aliases; the aliases limit is 50."
    # while 50 aliases are fine
    query = "query { " + " ".join(f"a{i}: __typename" for i in range(50)) + " }"
    assert len(await api.ok(query)) == 50


async def test_oversized_document_is_refused(api: Api) -> None:
    # given a document of many tokens (under the body limit), then a GraphQL error
    query = "query { viewer { " + "name " * 20000 + "} }"
    body = await api.gql(query)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "more than 5000 tokens" in error["message"]


# -- malformed requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00", b"", b'{"query": "{ viewer { name } }"', b"[" * 100_000],
    ids=["broken", "not-utf8", "empty", "truncated", "nested-too-deep"],
)
async def test_malformed_json_is_a_400_graphql_error(api: Api, content: bytes) -> None:
    response = await api.client.post("/graphql", content=content, headers=auth(api))
    assert_graphql_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "query",
        None,
        {},
        {"query": 5},
        {"query": None},
        {"query": "{ viewer { name } }", "variables": [1]},
        {"query": "{ viewer { name } }", "operationName": 7},
    ],
    ids=["array", "string", "null", "no-query", "query-number", "query-null", "vars", "opname"],
)
async def test_wrong_shape_is_a_400_graphql_error(api: Api, payload: Any) -> None:
    response = await api.client.post(
        "/graphql", content=json.dumps(payload).encode(), headers=auth(api)
    )
    assert_graphql_error(response, 400, "BAD_REQUEST")


async def test_missing_or_unknown_token_is_a_401_graphql_error(api: Api) -> None:
    response = await api.client.post("/graphql", json={"query": VIEWER})
    assert_graphql_error(response, 401, "UNAUTHENTICATED")
    response = await api.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": "Bearer tcs_unknown"}
    )
    assert_graphql_error(response, 401, "UNAUTHENTICATED")


async def test_a_thousand_malformed_requests_leave_the_server_serving(api: Api) -> None:
    bad: list[bytes] = [b"{not json", b"[]", b'{"query": 1}', b"\x00" * 100, b'{"query": "{"}']
    headers = auth(api)

    async def one(index: int) -> int:
        response = await api.client.post("/graphql", content=bad[index % 5], headers=headers)
        return response.status_code

    # given 1000 malformed requests in a row (in batches of 50 at a time)
    statuses: list[int] = []
    for start in range(0, 1000, 50):
        statuses += await asyncio.gather(*(one(i) for i in range(start, start + 50)))
    # then each got a client error (a syntax error is a GraphQL error at 200)
    assert len(statuses) == 1000
    assert set(statuses) <= {400, 200}
    assert statuses.count(400) == 800
    # and a normal query still answers 200 with data
    assert (await api.ok(VIEWER))["viewer"] == {"name": "admin", "role": "ADMIN"}


# -- unexpected errors -------------------------------------------------------------------


async def test_unexpected_error_is_masked_and_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary-secret-5b1e"

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database said: {canary}")

    # given a resolver that fails in a way nobody meant
    monkeypatch.setattr(channel_resolvers, "list_channels", broken)
    caplog.set_level(logging.DEBUG)
    # when a client asks for it
    response = await api.post("{ channels { id } }")
    # then it gets the masked message, never the exception's text
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["Internal server error."]
    assert body["errors"][0]["path"] == ["channels"]
    assert canary not in response.text
    assert "RuntimeError" not in response.text
    # and the operator's log has what happened, with the traceback
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert failures, "the unexpected error was not logged"
    assert failures[0].levelno == logging.ERROR
    assert "channels" in failures[0].getMessage()
    # other fields of the same request still work
    assert (await api.ok(VIEWER))["viewer"]["name"] == "admin"


async def test_client_mistakes_are_not_logged_as_errors(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.gql("{ nope }")
    await api.gql("{ viewer { ")
    await api.gql("{ auditLog { totalCount } }", token=await api.token(Role.VIEWER))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "nope" not in caplog.text


# -- GraphiQL, health, readiness, metrics ------------------------------------------------


async def test_browser_get_serves_graphiql(api: Api) -> None:
    response = await api.client.get(
        "/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    # a non-browser GET is told to POST
    response = await api.client.get("/graphql", headers={"Accept": "application/json"})
    assert_graphql_error(response, 405, "METHOD_NOT_ALLOWED")


async def test_health_readiness_and_metrics(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    health = await api.client.get("/healthz")
    assert health.status_code == 200
    # the fixture runs without the worker (run_worker False): ready means the database
    assert api.app.state.run_worker is False
    ready = await api.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    await api.ok(VIEWER)
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE tocsin_http_requests_total counter" in metrics.text
    assert 'tocsin_http_requests_total{method="POST",route="/graphql",status="200"}' in (
        metrics.text
    )

    # when the database does not answer, then not ready (but still alive)
    async def no_answer() -> bool:
        return False

    monkeypatch.setattr(api.services.db, "ping", no_answer)
    ready = await api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert (await api.client.get("/healthz")).status_code == 200


async def test_readiness_needs_the_worker_when_it_should_run(api: Api) -> None:
    api.app.state.run_worker = True  # as `tocsin serve` without --no-worker, worker gone
    try:
        ready = await api.client.get("/readyz")
    finally:
        api.app.state.run_worker = False
    assert ready.status_code == 503
    assert "worker is not running" in ready.json()["problems"]


# -- access log --------------------------------------------------------------------------


async def test_one_access_line_per_request_with_token_name_not_value(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    reader = await api.token(Role.VIEWER, name="ci-reader")
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    # when three requests are made: one with a token, one without, one bad
    await api.ok(VIEWER, token=reader)
    await api.client.get("/healthz")
    await api.client.post("/graphql", content=b"{bad", headers=auth(api, reader))
    # then there is exactly one structured line for each
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tocsin.access"]
    assert len(lines) == 3
    first, second, third = lines
    assert {k: first[k] for k in ("method", "path", "status", "token")} == {
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "token": "ci-reader",
    }
    assert isinstance(first["duration_ms"], int | float) and first["duration_ms"] >= 0
    assert (second["method"], second["path"], second["status"]) == ("GET", "/healthz", 200)
    assert second["token"] is None
    assert (third["status"], third["token"]) == (400, "ci-reader")
    # and no log line carries a token's value
    assert reader not in caplog.text
    assert api.admin_token not in caplog.text


# -- a real server -----------------------------------------------------------------------


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The app behind uvicorn on a real socket: its base URL and an ADMIN token."""
    app = create_app(settings, run_worker=False)
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    sock = tcp_socket(socket.AF_INET)  # Nagle off, as tocsin serve makes it
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        token, _, _ = await create_token(
            db=app.state.services.db, actor="test", name="admin", role=Role.ADMIN
        )
        assert token is not None
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


async def test_real_server_refuses_big_bodies_and_keeps_serving(
    served: tuple[str, str],
) -> None:
    base, token = served
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        # given a 20 MB body with Content-Length, then 413
        response = await client.post("/graphql", content=b"x" * BIG, headers=headers)
        assert_graphql_error(response, 413, "PAYLOAD_TOO_LARGE")
        # given a 20 MB chunked body, then 413 too
        body = CountingBody()
        stream = body.chunks()
        response = await client.post("/graphql", content=stream, headers=headers)
        await stream.aclose()
        assert_graphql_error(response, 413, "PAYLOAD_TOO_LARGE")
        # (uvicorn discards what the client still sends; the app read only ~1 MiB: see
        # test_big_chunked_body_is_refused_after_the_limit)
        # and the server still serves
        response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
        assert response.status_code == 200
        assert response.json() == {"data": {"viewer": {"name": "admin", "role": "ADMIN"}}}


async def test_graphql_errors_say_what_is_wrong_without_repeating_the_input(api: Api) -> None:
    save = (
        "mutation($input: SlackChannelInput!) "
        "{ saveSlackChannel(input: $input) { errors { code } } }"
    )
    wrong_type = await api.gql(save, {"input": {"maxRetries": "many-s3cr3t"}})
    [error] = wrong_type["errors"]
    assert error["message"] == (
        "Variable '$input' has invalid value at .maxRetries: "
        "Int cannot represent non-integer value."
    )
    unknown = await api.gql(save, {"input": {"webhookUrl": "https://x.example/s3cr3t", "b": 1}})
    [error] = unknown["errors"]
    assert "not to include unknown field 'b'" in error["message"]
    assert "s3cr3t" not in json.dumps(wrong_type) + json.dumps(unknown)


async def test_a_repeated_operation_is_validated_once(api: Api) -> None:
    # The depth and alias limits are validation rules; built per request they would
    # change ValidationCache's key each time and every request would be validated anew.
    from strawberry.extensions.validation_cache import _get_validate_cache

    from tocsin.schema import VALIDATION_CACHE_SIZE

    cache = _get_validate_cache(VALIDATION_CACHE_SIZE)
    query = "query RepeatedForCache { viewer { name role } }"
    await api.ok(query)
    before = cache.cache_info()
    for _ in range(5):
        await api.ok(query)
    after = cache.cache_info()
    assert after.hits - before.hits == 5
    assert after.misses == before.misses
