"""Log pages on big tables (issue 12): keyset cursors that new rows do not shift, and a
totalCount that stops counting at a bound (said so in the schema)."""

from __future__ import annotations

import pytest

from tests.cluster.test_retention import emit
from tests.support import Api
from tocsin.resolvers import pagination
from tocsin.schema import schema

PAGE = """query($after: String) { events(first: 5, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } nodes { id } } }"""


async def test_pages_follow_the_cursor_while_new_events_arrive(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 12 events, and a count bound of 8
    monkeypatch.setattr(pagination, "COUNT_BOUND", 8)
    emitted = await emit(api, 12, "paged")
    seen: list[str] = []
    after = None
    while True:
        page = (await api.ok(PAGE, {"after": after}))["events"]
        # then totalCount stops at the bound
        assert page["totalCount"] == 8
        seen += [node["id"] for node in page["nodes"]]
        # when new events arrive between pages, they shift nothing (an offset would)
        await emit(api, 1, "arrived meanwhile")
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then every one of the 12 was seen exactly once, newest first (ids sort by creation
    # time to the millisecond; one batch's events share it, in random order)
    assert sorted(seen) == sorted(emitted)
    assert seen == sorted(seen, reverse=True)


async def test_under_the_bound_the_count_is_exact(api: Api) -> None:
    await emit(api, 3, "few")
    assert (await api.ok(PAGE, {"after": None}))["events"]["totalCount"] == 3


def test_the_schema_says_total_count_is_bounded() -> None:
    for connection in ("EventConnection", "DeliveryConnection", "AuditEntryConnection"):
        field = schema.get_type_by_name(connection).fields  # type: ignore[union-attr]
        [total] = [f for f in field if f.python_name == "total_count"]
        assert total.description is not None and "10000" in total.description
