"""POST /graphql is answered ahead of Starlette's routing (app.GraphQLPost) and keeps
what the routed endpoint did: the access log line, the first of a repeated header, a 500
when it crashes, and every other request still routed."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.support import Api

QUERY = {"query": "{ eventTypes { name } }"}


async def test_a_graphql_post_is_answered_without_the_router(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given a router that counts what reaches it
    routed: list[tuple[str, str]] = []
    router = api.app.router
    route = router.__class__.__call__

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        routed.append((scope["method"], scope["path"]))
        await route(self, scope, receive, send)

    monkeypatch.setattr(router.__class__, "__call__", counting)
    caplog.set_level(logging.INFO, logger="tocsin.access")
    # when an operation is posted, and the health check asked
    response = await api.client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {api.admin_token}"}
    )
    health = await api.client.get("/healthz")
    # then the operation is answered as JSON, past the router; the health check is routed
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["data"]["eventTypes"]
    assert health.text == "ok"
    assert routed == [("GET", "/healthz")]
    # and both are in the access log, the operation with its token's name
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tocsin.access"]
    assert [(line["path"], line["status"], line["token"]) for line in lines] == [
        ("/graphql", 200, "admin"),
        ("/healthz", 200, None),
    ]


async def test_the_first_of_two_authorization_headers_counts(api: Api) -> None:
    # given a request with a bad token first and a good one second (as the routed
    # endpoint read headers: Starlette's Headers.get takes the first)
    headers = [
        ("Authorization", "Bearer not-a-token"),
        ("Authorization", f"Bearer {api.admin_token}"),
    ]
    response = await api.client.post("/graphql", json=QUERY, headers=headers)
    # then it is refused
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_crash_answers_500_and_the_next_request_is_served(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given an executor that crashes once
    from tocsin import app as app_module

    execute = app_module.schema.execute
    calls = 0

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await execute(*args, **kwargs)

    monkeypatch.setattr(app_module.schema, "execute", crashing)
    caplog.set_level(logging.INFO, logger="tocsin.access")
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
        headers = {"Authorization": f"Bearer {api.admin_token}"}
        # when an operation crashes it, and another follows
        crashed = await client.post("/graphql", json=QUERY, headers=headers)
        served = await client.post("/graphql", json=QUERY, headers=headers)
    # then the first is a plain 500 (nothing of the crash in it), the second is answered
    assert (crashed.status_code, crashed.text) == (500, "Internal Server Error")
    assert served.status_code == 200 and served.json()["data"]["eventTypes"]
    statuses = [
        json.loads(r.getMessage())["status"] for r in caplog.records if r.name == "tocsin.access"
    ]
    assert statuses == [500, 200]
