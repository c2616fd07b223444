"""DateTime with an explicit UTC offset, and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

__all__ = ["JSON", "DateTime"]


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
