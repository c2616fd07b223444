"""The group commit (resolvers/events.GroupCommitter): on SQLite a commit of emits is two
trips to the connection's thread, and an insert that fails with the COMMIT it travels
with fails no other emitter's event."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, select

from tests.delivery.test_delivery import save
from tests.support import Api
from tocsin.resolvers import events as events_module
from tocsin.storage import ingest
from tocsin.storage.ingest import NewEvent
from tocsin.storage.tables import DeliveryRow, EventRow
from tocsin.storage.types import utcnow


def _event(title: str) -> NewEvent:
    return NewEvent(
        type="refresh_failed",
        title=title,
        detail=None,
        metadata={"run": title},
        priority="HIGH",
        dedup_key=None,
        idempotency_key=None,
        source="test",
        occurred_at=utcnow(),
    )


async def _three_webhooks(api: Api) -> None:
    for name in ("a", "b", "c"):
        await save(api, "Webhook", {"name": name, "url": f"https://hooks.example.com/{name}"})


async def _stored(api: Api) -> tuple[int, int]:
    async with api.services.db.read() as session:
        events = await session.scalar(select(func.count()).select_from(EventRow))
        deliveries = await session.scalar(select(func.count()).select_from(DeliveryRow))
    return events, deliveries


async def test_a_commit_of_emits_is_two_trips_on_sqlite(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not api.services.db.is_sqlite:
        pytest.skip("trips to a connection's thread are aiosqlite's")
    await _three_webhooks(api)
    await api.services.committer.submit([_event("warm-up")])  # the channels' first read
    trips: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    # when two emitters' events are committed together
    written = await asyncio.gather(
        api.services.committer.submit([_event("one"), _event("two")]),
        api.services.committer.submit([_event("three")]),
    )
    monkeypatch.undo()
    # then BEGIN went with the read of the channels, both inserts with the COMMIT, and the
    # connection went back to the pool without a rollback
    assert trips == ["_run", "_commit"]
    assert [len(w.delivery_ids) for batch in written for w in batch] == [3, 3, 3]
    assert await _stored(api) == (4, 12)


async def test_an_insert_failing_at_commit_fails_only_its_own_emit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _three_webhooks(api)
    # given two emitters whose events get the same id (so the second insert of that id breaks
    # the primary key: on SQLite at the COMMIT the inserts travel with)
    fixed = "0" * 32
    monkeypatch.setattr(ingest, "_event_row", _with_id(ingest._event_row, fixed))
    first = asyncio.create_task(api.services.committer.submit([_event("first")]))
    second = asyncio.create_task(api.services.committer.submit([_event("second")]))
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    # then the batch was retried one emitter at a time: the first is stored, the second
    # alone is refused
    (stored,), refused = outcomes
    assert not isinstance(stored, BaseException) and stored.event.id == fixed
    assert isinstance(refused, Exception) and "UNIQUE" in str(refused).upper()
    assert await _stored(api) == (1, 3)
    # and the writer goes on: the next emit is stored
    monkeypatch.undo()
    (after,) = await api.services.committer.submit([_event("after")])
    assert len(after.delivery_ids) == 3
    assert await _stored(api) == (2, 6)


def _with_id(build: Any, event_id: str) -> Any:
    """``ingest._event_row`` whose event rows all get ``event_id``."""
    real = ingest.new_id

    def built(*args: Any, **kwargs: Any) -> Any:
        ingest.new_id = lambda: event_id
        try:
            return build(*args, **kwargs)
        finally:
            ingest.new_id = real

    return built


def _group_sizes(committer: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of events of each group ``committer`` writes from now on."""
    groups: list[int] = []
    write = type(committer)._write

    async def counted(self: Any, events: list[NewEvent]) -> Any:
        groups.append(len(events))
        return await write(self, events)

    monkeypatch.setattr(type(committer), "_write", counted)
    return groups


async def _after_turns(turns: int, committer: Any, title: str) -> Any:
    for _ in range(turns):
        await asyncio.sleep(0)
    return await committer.submit([_event(title)])


async def test_emits_reaching_the_writer_turns_apart_share_one_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _three_webhooks(api)
    committer = api.services.committer
    groups = _group_sizes(committer, monkeypatch)
    # when five emits reach the committer one turn of the event loop after another (as
    # requests do: read, run, executed over several turns)
    written = await asyncio.gather(*(_after_turns(n, committer, f"e{n}") for n in range(5)))
    # then they were written together, each emitter getting its own event back
    assert groups == [5]
    assert [batch[0].event.title for batch in written] == [f"e{n}" for n in range(5)]
    assert await _stored(api) == (5, 15)


async def test_a_steady_stream_of_emits_does_not_hold_the_first_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer = api.services.committer
    groups = _group_sizes(committer, monkeypatch)
    # when an emit arrives on every turn of the event loop, for longer than a group waits
    turns = 3 * events_module.GATHER_TURNS
    await asyncio.gather(*(_after_turns(n, committer, f"e{n}") for n in range(turns)))
    # then the first group was cut after GATHER_TURNS turns, not when the stream ended
    assert groups[0] <= events_module.GATHER_TURNS + 1
    assert len(groups) >= 2
    assert sum(groups) == turns
