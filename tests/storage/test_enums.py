"""The domain's enums are StrEnums: a member is the string stored and shown, so code and
rows compare without ``.value``; GraphQL still shows each member by its name."""

from __future__ import annotations

import enum
import json

import pytest
from graphql import GraphQLEnumType, build_schema

from tocsin.channels.registry import ChannelKind
from tocsin.schema import schema
from tocsin.storage import enums

DOMAIN_ENUMS = [
    ChannelKind,
    enums.Priority,
    enums.DeliveryMode,
    enums.DeliveryStatus,
    enums.SmtpSecurity,
    enums.Role,
]


@pytest.mark.parametrize("kind", DOMAIN_ENUMS, ids=lambda e: e.__name__)
def test_each_member_is_the_string_of_its_name(kind: type[enum.StrEnum]) -> None:
    assert issubclass(kind, enum.StrEnum)
    for member in kind:
        assert member == member.name == str(member) == f"{member}"
        assert json.dumps(member) == f'"{member.name}"'
        assert kind(member.name) is member


@pytest.mark.parametrize("kind", DOMAIN_ENUMS, ids=lambda e: e.__name__)
def test_graphql_shows_the_same_enum_values(kind: type[enum.StrEnum]) -> None:
    graphql_enum = build_schema(schema.as_str()).type_map[kind.__name__]
    assert isinstance(graphql_enum, GraphQLEnumType)
    assert list(graphql_enum.values) == [member.name for member in kind]


def test_a_status_read_from_a_row_equals_its_member() -> None:
    stored = "RETRYING"  # as a row holds it
    assert stored == enums.DeliveryStatus.RETRYING
    assert stored in (enums.DeliveryStatus.PENDING, enums.DeliveryStatus.RETRYING)
