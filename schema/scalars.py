"""DateTime with an explicit UTC offset, and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

__all__ = ["JSON", "DateTime"]


def _serialize(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs an explicit UTC offset, e.g. 2026-06-12T09:15:00+00:00")
    return parsed


DateTime = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 with an explicit UTC offset",
    serialize=_serialize,
    parse_value=_parse,
)
