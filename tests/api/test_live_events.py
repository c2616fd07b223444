"""Subscription.events over graphql-transport-ws on /graphql, against the app under a real
uvicorn: events emitted over HTTP arrive live at every EDITOR subscriber; a wrong token is
refused with 4401, a VIEWER or EMITTER with FORBIDDEN; a subscriber going away breaks no
emit; an event accepted by another API process on the same database arrives too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.live_client import LiveServer, live_client
from tests.support import Api, eventually, make_settings, new_database_url, start_api
from tocsin.resolvers.live import EventFeed
from tocsin.resolvers.tokens import create_token
from tocsin.storage.enums import Role

EMIT = """mutation($input: EmitEventInput!) { emitEvent(input: $input) {
  event { id } deduplicated errors { code } } }"""


class Live:
    def __init__(self, server: LiveServer, tokens: dict[Role, str], http: httpx.AsyncClient):
        self.server = server
        self.tokens = tokens
        self.http = http

    @property
    def url(self) -> str:
        return self.server.ws_url

    async def emit(self, **event: Any) -> dict[str, Any]:
        response = await self.http.post(
            self.server.http_url,
            json={"query": EMIT, "variables": {"input": {"type": "test", **event}}},
            headers={"Authorization": f"Bearer {self.tokens[Role.EMITTER]}"},
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()["data"]["emitEvent"]
        assert payload["errors"] == [], payload
        return payload


@pytest.fixture(scope="module")
async def live(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    data_dir = tmp_path_factory.mktemp("live") / "data"
    settings = make_settings(data_dir, await new_database_url(template_database, data_dir))
    async with LiveServer(settings) as server, httpx.AsyncClient(timeout=10) as http:
        tokens = {}
        for role in Role:
            value, _, _ = await create_token(
                db=server.services.db, actor="test", name=f"live {role.value}", role=role
            )
            assert value is not None
            tokens[role] = value
        yield Live(server, tokens, http)


async def feed_stopped(live: Live) -> None:
    await eventually(lambda: _not_running(live.server.services.feed))


async def _not_running(feed: EventFeed) -> bool:
    return not feed.running


# -- receiving ---------------------------------------------------------------------------


async def test_an_editor_receives_an_event_emitted_over_http(live: Live) -> None:
    async with live_client(live.url, token=live.tokens[Role.EDITOR]) as client:
        await client.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        # when an event is emitted through the HTTP API
        emitted = await live.emit(title="disk full on db-1", priority="HIGH")
        # then the subscriber gets it, live
        event = await client.next_event()
        assert event == {
            "id": emitted["event"]["id"],
            "title": "disk full on db-1",
            "type": "test",
            "priority": "HIGH",
            "dedupKey": None,
        }
    await feed_stopped(live)


async def _running(feed: EventFeed) -> bool:
    return feed.running


async def test_events_from_before_the_subscription_are_not_replayed(live: Live) -> None:
    await live.emit(title="before")
    async with live_client(live.url, token=live.tokens[Role.ADMIN]) as client:
        await client.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        await live.emit(title="after")
        assert (await client.next_event())["title"] == "after"


async def test_two_subscribers_both_get_every_event_in_order(live: Live) -> None:
    async with (
        live_client(live.url, token=live.tokens[Role.EDITOR]) as first,
        live_client(live.url, token=live.tokens[Role.ADMIN]) as second,
    ):
        await first.subscribe()
        await second.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        await asyncio.sleep(0.2)  # both subscriptions are registered with the feed
        for n in range(3):
            await live.emit(title=f"event {n}")
        for client in (first, second):
            titles = [(await client.next_event())["title"] for _ in range(3)]
            assert titles == ["event 0", "event 1", "event 2"]


async def test_deduplicated_events_are_included(live: Live) -> None:
    async with live_client(live.url, token=live.tokens[Role.EDITOR]) as client:
        await client.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        event = {"type": "refresh_failed", "dedupKey": "live-dedup"}
        first = await live.emit(title="dbt failed", **event)
        again = await live.emit(title="dbt failed again", **event)
        assert (first["deduplicated"], again["deduplicated"]) == (False, True)
        titles = [(await client.next_event())["title"] for _ in range(2)]
        assert titles == ["dbt failed", "dbt failed again"]


# -- authentication and roles ------------------------------------------------------------


@pytest.mark.parametrize(
    "form", ["payload Authorization", "payload authorization", "payload token", "header"]
)
async def test_the_token_may_come_in_the_payload_or_the_header(live: Live, form: str) -> None:
    token = live.tokens[Role.EDITOR]
    payload = {
        "payload Authorization": {"Authorization": f"Bearer {token}"},
        "payload authorization": {"authorization": f"Bearer {token}"},
        "payload token": {"token": token},
        "header": {},
    }[form]
    headers = {"Authorization": f"Bearer {token}"} if form == "header" else None
    async with live_client(live.url, headers=headers) as client:
        assert (await client.init(payload))["type"] == "connection_ack"
        await client.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        await live.emit(title=f"via {form}")
        assert (await client.next_event())["title"] == f"via {form}"


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer tcs_" + "x" * 43},
        {"token": "tcs_" + "x" * 43},
        {"Authorization": "Basic something"},
        {},
    ],
    ids=["unknown bearer", "unknown token", "not bearer", "none"],
)
async def test_a_wrong_or_missing_token_closes_with_4401(
    live: Live, payload: dict[str, str]
) -> None:
    async with live_client(live.url) as client:
        await client.send({"type": "connection_init", "payload": payload})
        assert await client.closed_with() == 4401


async def test_a_subscribe_before_connection_init_closes_with_4401(live: Live) -> None:
    async with live_client(live.url) as client:
        await client.subscribe()
        assert await client.closed_with() == 4401


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EMITTER])
async def test_a_viewer_or_emitter_subscription_is_forbidden(live: Live, role: Role) -> None:
    async with live_client(live.url, token=live.tokens[role]) as client:
        await client.subscribe()
        message = await client.receive()
        # then the operation ends with FORBIDDEN, the feed is not even started
        assert message["type"] == "error", message
        assert [(e["path"], e["extensions"]["code"]) for e in message["payload"]] == [
            (["events"], "FORBIDDEN")
        ]
        assert not live.server.services.feed.running
        # and no event ever comes
        await live.emit(title=f"not for the {role.value}")
        with pytest.raises(TimeoutError):
            await client.receive(timeout=1.0)


async def test_a_revoked_token_is_cut_off_at_the_next_event(live: Live) -> None:
    # given an editor subscribed with a token of its own
    value, row, _ = await create_token(
        db=live.server.services.db, actor="test", name="soon revoked", role=Role.EDITOR
    )
    assert value is not None and row is not None
    async with live_client(live.url, token=value) as client:
        await client.subscribe()
        await eventually(lambda: _running(live.server.services.feed))
        await live.emit(title="while valid")
        assert (await client.next_event())["title"] == "while valid"
        # when the token is revoked, and another event arrives
        response = await live.http.post(
            live.server.http_url,
            json={"query": f'mutation {{ revokeApiToken(id: "{row.id}") }}'},
            headers={"Authorization": f"Bearer {live.tokens[Role.ADMIN]}"},
        )
        assert response.json() == {"data": {"revokeApiToken": True}}
        await live.emit(title="after the revocation")
        # then the socket closes with 4401 before that event is sent
        assert await client.closed_with() == 4401
        assert client.before_close == []


@pytest.mark.parametrize(
    "query",
    [
        "{ viewer { name } }",
        'mutation { emitEvent(input: {type: "test", title: "over the socket"}) { event { id } } }',
    ],
    ids=["query", "mutation"],
)
async def test_queries_and_mutations_are_not_run_over_the_socket(live: Live, query: str) -> None:
    async with live_client(live.url, token=live.tokens[Role.ADMIN]) as client:
        await client.subscribe(query)
        message = await client.receive()
        assert message["type"] == "error", message
        assert [e["extensions"]["code"] for e in message["payload"]] == ["BAD_REQUEST"]
        # and the socket stays open for subscriptions
        await client.subscribe(op_id="2")
        await eventually(lambda: _running(live.server.services.feed))
        await live.emit(title="still subscribed")
        assert (await client.next_event())["title"] == "still subscribed"
    events = await live.http.post(
        live.server.http_url,
        json={"query": "{ events(first: 50) { nodes { title } } }"},
        headers={"Authorization": f"Bearer {live.tokens[Role.ADMIN]}"},
    )
    titles = [n["title"] for n in events.json()["data"]["events"]["nodes"]]
    assert "over the socket" not in titles


# -- robustness ----------------------------------------------------------------------------


async def test_a_subscriber_that_goes_away_breaks_no_emit(live: Live) -> None:
    async with live_client(live.url, token=live.tokens[Role.EDITOR]) as staying:
        await staying.subscribe()
        # given a second subscriber that drops its connection without a goodbye
        async with live_client(live.url, token=live.tokens[Role.EDITOR]) as leaving:
            await leaving.subscribe()
            await eventually(lambda: _running(live.server.services.feed))
            leaving.ws.transport.abort()  # type: ignore[attr-defined]
        # then emits still answer at once, and the other subscriber still gets them
        for n in range(3):
            await live.emit(title=f"after the drop {n}")
        titles = [(await staying.next_event())["title"] for _ in range(3)]
        assert titles == [f"after the drop {n}" for n in range(3)]
    # and once nobody listens the poller stops
    await feed_stopped(live)


async def test_an_event_accepted_by_another_api_process_arrives(live: Live, tmp_path: Path) -> None:
    # given a second API process on the same database (its own committer, its own feed)
    settings = live.server.services.settings
    other_settings = make_settings(
        tmp_path / "other", settings.database_url, secret_keys=settings.secret_keys
    )
    async for other in start_api(other_settings, run_worker=False):
        async with live_client(live.url, token=live.tokens[Role.EDITOR]) as client:
            await client.subscribe()
            await eventually(lambda: _running(live.server.services.feed))
            # when that process accepts an event
            await other.ok(
                'mutation { emitEvent(input: {type: "test", title: "from elsewhere"}) '
                "{ event { id } } }"
            )
            # then this process's subscriber gets it (by polling: no in-process wake-up)
            assert (await client.next_event())["title"] == "from elsewhere"


async def test_a_slow_subscriber_loses_its_oldest_events_not_the_emit(api: Api) -> None:
    feed = EventFeed(api.services.db, queue_size=3, interval=0.05)
    async with feed.subscribe() as queue:
        # when more events arrive than the subscriber's queue holds, and it reads none
        for n in range(6):
            emitted = await api.ok(EMIT, {"input": {"type": "test", "title": f"burst {n}"}})
            assert emitted["emitEvent"]["errors"] == []
            await asyncio.sleep(0.005)  # ids order events by the millisecond
        await eventually(lambda: _has_title(queue, "burst 5"))
        # then it holds the newest ones
        held = [row.title for row in queue._queue]  # type: ignore[attr-defined]
        assert held == ["burst 3", "burst 4", "burst 5"]
    assert not feed.running


async def _has_title(queue: asyncio.Queue[Any], title: str) -> bool:
    return any(row.title == title for row in queue._queue)  # type: ignore[attr-defined]
