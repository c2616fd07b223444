"""DateTime with an explicit UTC offset, and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from tocsin.resolvers.validation import non_finite_at

__all__ = ["JSON", "DateTime", "JSONScalar"]


def _serialize(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _parse(value: object) -> datetime:
    # GraphQLError, not ValueError: an inline literal's error would otherwise reach the
    # client masked as "Internal server error." (see _should_mask in schema/__init__.py).
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLError("DateTime must be an ISO 8601 string") from None
    if parsed.tzinfo is None:
        raise GraphQLError("DateTime needs an explicit UTC offset, e.g. 2026-06-12T09:15:00+00:00")
    return parsed


DateTime = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 with an explicit UTC offset",
    serialize=_serialize,
    parse_value=_parse,
)


def _finite_json(value: Any) -> Any:
    """``value`` with each NaN or infinite float replaced by null: a row stored before
    such numbers were refused must not break the listing that shows it."""
    if non_finite_at(value) is None:
        return value
    # JSON text with NaN/Infinity, read back with null for them (no Python recursion)
    return json.loads(json.dumps(value, default=str), parse_constant=lambda _: None)


# Strawberry's JSON with a serializer that cannot produce what JSON lacks. Inputs are read
# as they come (1e400, inline or in variables, is infinity): each JSON input's own check
# refuses a non-finite number with a UserError that says where (see non_finite_at).
JSONScalar = strawberry.scalar(
    name="JSON",
    description=(
        "The `JSON` scalar type represents JSON values as specified by "
        "[ECMA-404]"
        "(https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf)."
    ),
    specified_by_url=(
        "https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf"
    ),
    serialize=_finite_json,
    parse_value=lambda value: value,
)
