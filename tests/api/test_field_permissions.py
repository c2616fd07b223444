"""Acceptance: event content and delivery outcomes are read by the roles that may, by
whatever path. (a) A walk of the schema, for each role, through the fields that role is
permitted (read off the Strawberry fields): a VIEWER reaches no Event, Delivery or
DeliveryAttempt and no delivery error; an EMITTER reaches Event only through its own emit
payloads, and no Delivery. (b) The paths seen in the issue, over HTTP, for each role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLUnionType,
    get_named_type,
)
from strawberry.permission import PermissionExtension

from tests.support import Api
from tocsin.schema import schema
from tocsin.storage.enums import Role

Composite = GraphQLObjectType | GraphQLInterfaceType
CONTENT_TYPES = {"Event", "Delivery", "DeliveryAttempt"}
# Free-text outcomes of a delivery or a test send: a receiver's answer may quote anything.
OUTCOME_FIELDS = {("ChannelTestResult", "error")}


def roles_of(field: GraphQLField) -> frozenset[Role]:
    """The roles a field admits: all of them unless a permission says otherwise."""
    allowed = frozenset(Role)
    definition = (field.extensions or {}).get("strawberry-definition")
    for extension in getattr(definition, "extensions", None) or ():
        if isinstance(extension, PermissionExtension):
            for permission in extension.permissions:
                allowed &= type(permission).roles  # type: ignore[attr-defined]
    return allowed


@dataclass(frozen=True)
class Edge:
    """A permitted field, and the type it leads to."""

    owner: str
    field: str
    target: str


def walk(role: Role) -> tuple[set[str], list[Edge]]:
    """The types ``role`` reaches from the roots, and every field it may read on them."""
    graphql_schema = schema._schema
    roots = [graphql_schema.query_type, graphql_schema.mutation_type]
    roots.append(graphql_schema.subscription_type)
    pending: list[GraphQLNamedType] = [root for root in roots if root is not None]
    reached: set[str] = set()
    edges: list[Edge] = []
    while pending:
        current = pending.pop()
        if current.name in reached:
            continue
        reached.add(current.name)
        if isinstance(current, GraphQLUnionType):
            pending.extend(current.types)
            continue
        if not isinstance(current, Composite):
            continue
        if isinstance(current, GraphQLInterfaceType):
            pending.extend(graphql_schema.get_possible_types(current))
        for name, field in current.fields.items():
            if role not in roles_of(field):
                continue
            target = get_named_type(field.type)
            edges.append(Edge(current.name, name, target.name))
            pending.append(target)
    return reached, edges


def into(edges: list[Edge], types: set[str]) -> Iterator[str]:
    for edge in edges:
        if edge.target in types:
            yield f"{edge.owner}.{edge.field} -> {edge.target}"


def outcome_fields(edges: list[Edge]) -> set[str]:
    return {
        f"{e.owner}.{e.field}"
        for e in edges
        if (e.owner, e.field) in OUTCOME_FIELDS or e.field.lower().endswith("error")
    }


# -- (a) the walk ------------------------------------------------------------------------


def test_the_walk_sees_what_the_editor_sees() -> None:
    # the walk is not vacuous: an editor reaches every content type and outcome
    reached, edges = walk(Role.EDITOR)
    assert CONTENT_TYPES <= reached
    assert {"Channel.lastDelivery -> Delivery", "Delivery.event -> Event"} <= set(
        into(edges, CONTENT_TYPES)
    )
    assert {"ChannelTestResult.error", "Delivery.lastError", "DeliveryAttempt.error"} <= (
        outcome_fields(edges)
    )


def test_a_viewer_reaches_no_event_delivery_or_outcome() -> None:
    reached, edges = walk(Role.VIEWER)
    assert "Channel" in reached  # it does read channels
    assert reached & CONTENT_TYPES == set(), list(into(edges, CONTENT_TYPES))
    assert outcome_fields(edges) == set()


def test_an_emitter_reaches_events_only_through_its_emit_payloads() -> None:
    reached, edges = walk(Role.EMITTER)
    assert sorted(into(edges, CONTENT_TYPES)) == [
        "EmitEventPayload.event -> Event",
        "EmitEventsPayload.events -> Event",
    ]
    assert "Delivery" not in reached and "DeliveryAttempt" not in reached
    assert outcome_fields(edges) == set()


def test_only_editors_reach_route_decisions() -> None:
    # explainRouting's reasons quote the event's metadata and the channels' filters
    assert "RouteDecision" in walk(Role.EDITOR)[0] and "RouteDecision" in walk(Role.ADMIN)[0]
    assert "RouteDecision" not in walk(Role.VIEWER)[0]
    assert "RouteDecision" not in walk(Role.EMITTER)[0]


def test_every_content_field_carries_its_own_permission() -> None:
    # in depth: should a future field lead a VIEWER to one of these types, its fields still
    # refuse the VIEWER
    graphql_schema = schema._schema
    for name in sorted(CONTENT_TYPES):
        type_ = graphql_schema.type_map[name]
        assert isinstance(type_, GraphQLObjectType)
        open_fields = [f for f, field in type_.fields.items() if Role.VIEWER in roles_of(field)]
        assert open_fields == [], f"{name} fields a VIEWER may read: {open_fields}"


# -- (b) over HTTP -----------------------------------------------------------------------

SAVE = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
  channel { id } errors { code } } }"""
EMIT = 'mutation { emitEvent(input: {type: "test", title: "secret-title", detail: "d"}) '
NESTED = """query($id: ID!) { channel(id: $id) { id name
  lastDelivery { id status lastError event { title detail metadata } attempts { error } }
  lastTest { ok error } } }"""


async def a_channel_with_a_delivery(api: Api) -> str:
    saved = await api.ok(SAVE, {"input": {"name": "hook", "url": "http://127.0.0.1:9/hook"}})
    channel_id: str = saved["saveWebhookChannel"]["channel"]["id"]
    emitted = await api.ok(EMIT + "{ event { id } errors { code } } }")
    assert emitted["emitEvent"]["errors"] == []
    return channel_id


async def test_a_viewer_reads_the_channel_but_not_its_last_delivery(api: Api) -> None:
    channel_id = await a_channel_with_a_delivery(api)
    viewer = await api.token(Role.VIEWER)
    # when a VIEWER asks for the channel's last delivery, its event and its errors
    body = await api.gql(NESTED, {"id": channel_id}, token=viewer)
    # then it gets the channel, and FORBIDDEN (with null) for the delivery
    channel = body["data"]["channel"]
    assert (channel["id"], channel["name"], channel["lastDelivery"]) == (channel_id, "hook", None)
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["channel", "lastDelivery"], "FORBIDDEN")
    ]
    assert "secret-title" not in str(body)
    # while an EDITOR reads all of it
    editor = await api.ok(NESTED, {"id": channel_id}, token=await api.token(Role.EDITOR))
    delivery = editor["channel"]["lastDelivery"]
    assert delivery["event"]["title"] == "secret-title"
    assert delivery["status"] == "PENDING"


async def test_a_viewer_gets_no_test_error(api: Api) -> None:
    channel_id = await a_channel_with_a_delivery(api)
    # given a test send that failed (nothing listens on port 9)
    sent = await api.ok(
        f'mutation {{ sendTest(channelId: "{channel_id}") {{ results {{ ok }} }} }}'
    )
    assert sent["sendTest"]["results"] == [{"ok": False}]
    query = f'{{ channel(id: "{channel_id}") {{ lastTest {{ ok error }} }} }}'
    # then a VIEWER sees that it failed, not the error
    body = await api.gql(query, token=await api.token(Role.VIEWER))
    assert body["data"]["channel"]["lastTest"] == {"ok": False, "error": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["channel", "lastTest", "error"], "FORBIDDEN")
    ]
    # and an EDITOR sees the error
    editor = await api.ok(query, token=await api.token(Role.EDITOR))
    assert editor["channel"]["lastTest"]["error"]


@pytest.mark.parametrize("many", [False, True], ids=["emitEvent", "emitEvents"])
async def test_an_emitter_gets_its_event_id_whatever_else_it_asks(api: Api, many: bool) -> None:
    await a_channel_with_a_delivery(api)
    emitter = await api.token(Role.EMITTER)
    selection = "{ id title deliveries { status } }"
    if many:
        query = (
            'mutation { emitEvents(inputs: [{type: "test", title: "mine"}]) '
            f"{{ events {selection} errors {{ code }} }} }}"
        )
    else:
        query = (
            'mutation { emitEvent(input: {type: "test", title: "mine"}) '
            f"{{ event {selection} errors {{ code }} }} }}"
        )
    # when an EMITTER asks for its event's deliveries
    body = await api.gql(query, token=emitter)
    # then it gets its event's id and title, no deliveries, and is told they are forbidden
    field = "emitEvents" if many else "emitEvent"
    payload = body["data"][field]
    event = payload["events"][0] if many else payload["event"]
    assert event["id"] and event["title"] == "mine"
    assert event["deliveries"] == []
    path = [field, "events", 0, "deliveries"] if many else [field, "event", "deliveries"]
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(path, "FORBIDDEN")]
    # and the event was stored, with its delivery, as an editor sees
    editor = await api.ok(f'{{ event(id: "{event["id"]}") {{ title deliveries {{ status }} }} }}')
    assert editor["event"] == {"title": "mine", "deliveries": [{"status": "PENDING"}]}
