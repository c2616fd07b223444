"""Back-pressure on emits: TOCSIN_EMIT_RATE_LIMIT per token (HTTP 429, RATE_LIMITED) and
the group-commit queue's bound (HTTP 503, OVERLOADED). Refused means not stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.pg_gate import gate
from tests.support import Api, eventually, make_settings, start_api
from tocsin.resolvers.rate_limit import EmitRateLimiter
from tocsin.storage.enums import Role

EMIT = """mutation($i: EmitEventInput!) { emitEvent(input: $i) {
  event { id } errors { code } } }"""
EMIT_MANY = """mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) {
  events { id } errors { code } } }"""
EVENT_COUNT = "{ events { totalCount } }"


def _event(title: str) -> dict[str, Any]:
    return {"type": "test", "title": title}


async def _emit(api: Api, token: str, title: str) -> httpx.Response:
    return await api.post(EMIT, {"i": _event(title)}, token=token)


def _accepted(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    event_id: str = body["data"]["emitEvent"]["event"]["id"]
    return event_id


def _refused(response: httpx.Response, status: int, code: str) -> int:
    """The Retry-After of a refusal answered with ``status`` and the GraphQL error ``code``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert body["errors"][0]["extensions"]["retryAfter"] == retry_after
    return retry_after


async def _stored(api: Api) -> int:
    count: int = (await api.ok(EVENT_COUNT))["events"]["totalCount"]
    return count


async def test_a_token_over_the_rate_limit_is_refused_and_others_are_not(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "data", database_url, emit_rate_limit=3)
    async for api in start_api(settings, run_worker=False):
        busy, other = await api.token(Role.EMITTER, "busy"), await api.token(Role.EMITTER, "other")
        # given a token that emitted its burst (one second's worth: 3 events, in one call)
        many = await api.post(EMIT_MANY, {"i": [_event(f"e{n}") for n in range(3)]}, token=busy)
        assert many.status_code == 200 and "errors" not in many.json(), many.text
        # when it emits once more at once, then it is refused with 429 and Retry-After
        retry_after = _refused(await _emit(api, busy, "one too many"), 429, "RATE_LIMITED")
        # and a batch of it is refused whole
        batch = await api.post(EMIT_MANY, {"i": [_event("b1"), _event("b2")]}, token=busy)
        _refused(batch, 429, "RATE_LIMITED")
        # while another token still emits
        _accepted(await _emit(api, other, "unaffected"))
        # and nothing refused was stored
        assert await _stored(api) == 4
        # then after Retry-After seconds the busy token emits again
        await asyncio.sleep(retry_after)
        _accepted(await _emit(api, busy, "later"))
        assert await _stored(api) == 5


async def test_no_rate_limit_by_default(api: Api) -> None:
    emitter = await api.token(Role.EMITTER)
    assert api.services.settings.emit_rate_limit == 0
    for n in range(30):
        _accepted(await _emit(api, emitter, f"e{n}"))


@asynccontextmanager
async def writer_held(api: Api) -> AsyncIterator[None]:
    """The event writer cannot write until the block ends (emits queue up behind it)."""
    db = api.services.db
    if db.is_sqlite:
        async with db.write():  # the one writer of the process: the committer waits for it
            yield
        return
    url = api.services.settings.database_url
    async with gate(url, "LOCK TABLE event IN EXCLUSIVE MODE"):
        yield


async def test_emits_past_the_queue_bound_are_refused_with_503(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "data", database_url, emit_queue_limit=2)
    async for api in start_api(settings, run_worker=False):
        await _overload(api)


async def _overload(api: Api) -> None:
    emitter = await api.token(Role.EMITTER)
    _accepted(await _emit(api, emitter, "warm-up"))  # the committer exists
    committer = api.services.committer
    async with writer_held(api):
        # given a writer that is stuck on one commit, and two events waiting behind it
        stuck = asyncio.create_task(_emit(api, emitter, "in the commit"))
        await eventually(lambda: _now(committer.writing == 1))
        waiting = [asyncio.create_task(_emit(api, emitter, f"w{n}")) for n in range(2)]
        await eventually(lambda: _now(committer.waiting == 2))
        # when one more arrives, then it is refused at once with 503 and Retry-After
        # (queued behind the held writer, it would never be answered in this block)
        refused = await asyncio.wait_for(_emit(api, emitter, "past the bound"), timeout=10)
        _refused(refused, 503, "OVERLOADED")
    # then everything accepted before it is stored once the writer catches up
    accepted = {_accepted(await task) for task in (stuck, *waiting)}
    assert len(accepted) == 3
    assert await _stored(api) == 4
    # and the bound lifts with the backlog
    _accepted(await _emit(api, emitter, "after"))


async def _now(value: bool) -> bool:
    return value


def test_a_call_larger_than_the_burst_waits_for_a_full_bucket_and_then_pays_it_back() -> None:
    now = [0.0]
    limiter = EmitRateLimiter(2, clock=lambda: now[0])
    # given a rate of 2/s (a burst of 2), a batch of 6 is admitted on a full bucket
    assert limiter.admit("a", 6) == 0
    # and the next event waits until the 4 events of excess and itself are paid: 2.5 s
    assert limiter.admit("a", 1) == 3
    now[0] = 2.4
    assert limiter.admit("a", 1) == 1
    now[0] = 2.5
    assert limiter.admit("a", 1) == 0
    # while another key has its own bucket
    assert limiter.admit("b", 2) == 0
