"""emitEvent and emitEvents are answered from graphql-core's coerced arguments
(schema/emit_fast_path.py): every field of EmitEventInput must arrive as Strawberry's own
conversion would have delivered it, and the role check must hold."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from graphql import coerce_input_value

from tests.support import Api
from tocsin.resolvers.events import EmitRequest
from tocsin.schema import schema
from tocsin.schema.emit_fast_path import request_of
from tocsin.schema.inputs import EmitEventInput
from tocsin.schema.mutation import _emit_request
from tocsin.storage.enums import Priority, Role

EVERY_FIELD = {
    "type": "refresh_failed",
    "title": "Refresh failed",
    "detail": "dbt exited 2",
    "metadata": {"env": "prod", "n": 1.5, "tags": ["a"]},
    "priority": "HIGH",
    "dedupKey": "d-1",
    "idempotencyKey": "i-1",
    "occurredAt": "2026-12-03T09:00:00Z",
}


def test_every_input_field_arrives_as_strawberrys_conversion_would_deliver_it() -> None:
    graphql_type = schema._schema.get_type("EmitEventInput")
    assert set(graphql_type.fields) == set(EVERY_FIELD)  # a new field needs a line here
    fast = request_of(coerce_input_value(EVERY_FIELD, graphql_type))
    strawberry_made = _emit_request(
        EmitEventInput(
            type="refresh_failed",
            title="Refresh failed",
            detail="dbt exited 2",
            metadata={"env": "prod", "n": 1.5, "tags": ["a"]},  # type: ignore[arg-type]
            priority=Priority.HIGH,
            dedup_key="d-1",
            idempotency_key="i-1",
            occurred_at=datetime(2026, 12, 3, 9, tzinfo=UTC),
        )
    )
    assert fast == strawberry_made
    assert all(getattr(fast, f.name) is not None for f in dataclasses.fields(EmitRequest))


def test_absent_optional_fields_arrive_as_none() -> None:
    graphql_type = schema._schema.get_type("EmitEventInput")
    fast = request_of(coerce_input_value({"type": "t", "title": "x"}, graphql_type))
    assert fast == EmitRequest(type="t", title="x")


async def test_every_field_is_stored_through_the_fast_path(api: Api) -> None:
    data = await api.ok(
        "mutation($i: EmitEventInput!) { emitEvent(input: $i) { event { type title detail "
        "metadata priority dedupKey occurredAt } errors { code } } }",
        {"i": EVERY_FIELD},
    )
    assert data["emitEvent"]["errors"] == []
    assert data["emitEvent"]["event"] == {
        "type": "refresh_failed",
        "title": "Refresh failed",
        "detail": "dbt exited 2",
        "metadata": {"env": "prod", "n": 1.5, "tags": ["a"]},
        "priority": "HIGH",
        "dedupKey": "d-1",
        "occurredAt": "2026-12-03T09:00:00+00:00",
    }


async def test_a_viewer_is_refused_both_fields_and_nothing_is_stored(api: Api) -> None:
    viewer = await api.token(Role.VIEWER)
    for query in (
        'mutation { emitEvent(input: {type: "refresh_failed", title: "x"}) { errors { code } } }',
        'mutation { emitEvents(inputs: [{type: "refresh_failed", title: "x"}]) '
        "{ errors { code } } }",
    ):
        response = await api.post(query, token=viewer)
        body = response.json()
        assert body["data"] is None
        assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
            ("FORBIDDEN", "Your token's role may not do this.")
        ]
    events = await api.ok("{ events { totalCount } }")
    assert events["events"]["totalCount"] == 0
