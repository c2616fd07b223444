"""Input types. ``Maybe`` tells an absent field (keep) from null (clear) from a value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from strawberry import Maybe
from strawberry.types.maybe import Some

from tocsin.schema.enums import (
    ChannelKind,
    DeliveryMode,
    DeliveryStatus,
    EmailProvider,
    Priority,
    SmtpSecurity,
)
from tocsin.schema.scalars import JSON


@strawberry.input
class ChannelInputBase:
    id: strawberry.ID | None = None
    name: Maybe[str | None]
    enabled: Maybe[bool | None]
    event_types: Maybe[list[str] | None]
    event_categories: Maybe[list[str] | None] = strawberry.field(
        description="Event categories this channel receives, besides those of eventTypes; "
        "with eventTypes also null, every event."
    )
    min_priority: Maybe[Priority | None]
    metadata_match: Maybe[JSON | None]
    mode: Maybe[DeliveryMode | None]
    max_retries: Maybe[int | None]


KIND_INPUTS: dict[str, type[ChannelInputBase]] = {}
"Each kind's save input; ``schema/mutation.py`` makes a ``save<Label>Channel`` of each."

T = TypeVar("T", bound=type[ChannelInputBase])


def kind_input(kind: str) -> Callable[[T], T]:
    """Registers the save input of a kind (``channels/registry.py``'s key)."""

    def register(cls: T) -> T:
        KIND_INPUTS[kind] = cls
        return cls

    return register


@kind_input("SLACK")
@strawberry.input
class SlackChannelInput(ChannelInputBase):
    webhook_url: Maybe[str | None]
    bot_token: Maybe[str | None] = strawberry.field(
        description="A bot token (xoxb-…), write-only. With a channel, messages go through "
        "chat.postMessage, and the webhook URL, if also set, is not used."
    )
    channel: Maybe[str | None] = strawberry.field(
        description="A channel ID such as C0123ABCD (G…, D…) or a name such as #data-alerts: "
        "where the bot token posts, or what overrides the webhook's default channel."
    )


@kind_input("WEBHOOK")
@strawberry.input
class WebhookChannelInput(ChannelInputBase):
    url: Maybe[str | None]
    signing_secret: Maybe[str | None]
    headers: Maybe[JSON | None] = strawberry.field(
        description="Replaces the set of custom headers; a null value keeps that header's "
        "saved value, a name left out removes it."
    )


@kind_input("EMAIL")
@strawberry.input
class EmailChannelInput(ChannelInputBase):
    to: Maybe[list[str] | None]
    smtp_host: Maybe[str | None]
    smtp_port: Maybe[int | None]
    security: Maybe[SmtpSecurity | None]
    username: Maybe[str | None]
    password: Maybe[str | None]
    from_address: Maybe[str | None]
    from_name: Maybe[str | None]
    verify_tls: Maybe[bool | None]
    provider: Maybe[EmailProvider | None] = strawberry.field(
        description="SMTP (the default) or SENDGRID; a SENDGRID channel is configured once "
        "to, sendgridApiKey and fromAddress are set."
    )
    sendgrid_api_key: Maybe[str | None] = strawberry.field(
        description="A secret: write-only. Absent keeps the stored key, null clears it."
    )


@kind_input("DISCORD")
@strawberry.input
class DiscordChannelInput(ChannelInputBase):
    webhook_url: Maybe[str | None]


@kind_input("TELEGRAM")
@strawberry.input
class TelegramChannelInput(ChannelInputBase):
    bot_token: Maybe[str | None]
    chat_id: Maybe[str | None]


@kind_input("TEAMS")
@strawberry.input
class TeamsChannelInput(ChannelInputBase):
    webhook_url: Maybe[str | None]


def camel_case(name: str) -> str:
    """A Python field name as GraphQL spells it (``smtp_host`` -> ``smtpHost``)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def present_fields(data: Any) -> dict[str, Any]:
    """{field: value} for every ``Maybe`` field the client sent; enums become their values."""
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(data):
        if item.name == "id":
            continue
        value = getattr(data, item.name)
        if not isinstance(value, Some):
            continue
        inner = value.value
        changes[item.name] = inner.value if isinstance(inner, Enum) else inner
    return changes


@strawberry.input
class EmitEventInput:
    type: str
    title: str
    detail: str | None = None
    metadata: JSON | None = None
    priority: Priority | None = strawberry.field(
        default=None, description="Defaults to the event type's default priority."
    )
    dedup_key: str | None = strawberry.field(
        default=None,
        description="Events of the same type and dedupKey within the type's dedup window are "
        "recorded but not re-sent.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A repeated call with the same key returns the first event and sends "
        "nothing new.",
    )
    occurred_at: datetime | None = None


@strawberry.input
class DeliveryFilter:
    event_type: str | None = None
    status: DeliveryStatus | None = None
    channel_id: strawberry.ID | None = None
    kind: ChannelKind | None = None
    since: datetime | None = None
    until: datetime | None = None


@strawberry.input
class EventTypeInput:
    name: str
    category: Maybe[str | None]
    description: Maybe[str | None]
    default_priority: Maybe[Priority | None]
    enabled: Maybe[bool | None]
    dedup_window_seconds: Maybe[int | None]
