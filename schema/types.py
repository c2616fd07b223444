"""Output types. Each is built from a row by a ``from_row`` function that copies only
what may be shown: no output type has a field that could return a secret."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from tocsin.channels.email import email_provider
from tocsin.channels.registry import is_configured, kind_for
from tocsin.resolvers import deliveries as delivery_service
from tocsin.resolvers.pagination import TOTAL_COUNT_DESCRIPTION, Page
from tocsin.resolvers.problems import Problem
from tocsin.schema.enums import (
    ChannelKind,
    DeliveryMode,
    DeliveryStatus,
    EmailProvider,
    Priority,
    Role,
    SmtpSecurity,
)
from tocsin.schema.permissions import EDITORS, EVENT_READERS, RefuseBesideData
from tocsin.schema.scalars import JSON
from tocsin.storage import tables
from tocsin.storage.mutes import mute_in_force
from tocsin.storage.types import utcnow


@strawberry.type(
    description="A problem with the caller's input, meant for a form: "
    "which field, a stable code, a sentence."
)
class UserError:
    field: list[str] | None
    code: str
    message: str

    @classmethod
    def from_problem(cls, problem: Problem) -> UserError:
        return cls(field=problem.field, code=problem.code, message=problem.message)


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [UserError.from_problem(p) for p in problems]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


# -- channels ----------------------------------------------------------------------------


@strawberry.type
class ChannelTestResult:
    channel: Channel
    ok: bool
    status_code: int | None
    # A receiver's answer may quote the event or its own internals: editors only.
    error: str | None = strawberry.field(permission_classes=EDITORS)
    latency_ms: float
    tested_at: datetime


@strawberry.interface
class Channel:
    id: strawberry.ID
    kind: ChannelKind
    name: str
    enabled: bool
    configured: bool = strawberry.field(
        description="Every field the kind needs, secrets included, is stored."
    )
    event_types: list[str] | None = strawberry.field(
        description="Event types this channel receives; null means every event type."
    )
    event_categories: list[str] | None = strawberry.field(
        description="Event categories this channel receives: an event is routed here when its "
        "type is in eventTypes or its category is in eventCategories; both null means every "
        "event."
    )
    min_priority: Priority = strawberry.field(
        description="Events below this priority are not sent here."
    )
    metadata_match: JSON | None = strawberry.field(
        description='Only events whose metadata matches, e.g. {"environment": ["production"]}; '
        "null matches all."
    )
    mode: DeliveryMode
    muted_until: datetime | None = strawberry.field(
        description="While muted, the end of the mute; null once it has passed."
    )
    max_retries: int
    created_at: datetime
    updated_at: datetime
    last_test_data: strawberry.Private[dict[str, Any] | None]

    @strawberry.field
    def last_test(self) -> ChannelTestResult | None:
        data = self.last_test_data
        if data is None:
            return None
        return ChannelTestResult(
            channel=self,
            ok=data["ok"],
            status_code=data.get("status_code"),
            error=data.get("error"),
            latency_ms=data["latency_ms"],
            tested_at=datetime.fromisoformat(data["tested_at"]),
        )

    @strawberry.field(permission_classes=EDITORS)
    async def last_delivery(self, info: Info) -> Delivery | None:
        row = await delivery_service.last_delivery_loader(info.context).load(str(self.id))
        return Delivery.from_row(row) if row else None


KindView = Callable[[dict[str, Any]], dict[str, Any]]
KIND_TYPES: dict[str, tuple[type[Channel], KindView | None]] = {}
"Each kind's output type, and what (if anything) it changes in the generic view."

T = TypeVar("T", bound=type[Channel])


def kind_type(kind: str, view: KindView | None = None) -> Callable[[T], T]:
    """Registers the output type of a kind (``channels/registry.py``'s key)."""

    def register(cls: T) -> T:
        KIND_TYPES[kind] = (cls, view)
        return cls

    return register


@kind_type("SLACK")
@strawberry.type(
    description="Configured with a webhook URL, or with a bot token and a channel; with both, "
    "the bot token and channel win (chat.postMessage) and the webhook URL is not used."
)
class SlackChannel(Channel):
    webhook_url_set: bool
    webhook_url_hint: str | None
    bot_token_set: bool
    channel: str | None = strawberry.field(
        description="Where a bot token posts (a channel ID such as C0123ABCD, or #name); with "
        "only a webhook URL, the channel that overrides the webhook's default."
    )


@kind_type("WEBHOOK")
@strawberry.type
class WebhookChannel(Channel):
    url_set: bool
    url_hint: str | None
    signing_secret_set: bool
    header_names: list[str] = strawberry.field(
        description="Names of the custom headers; their values are secret."
    )


def _email_view(values: dict[str, Any]) -> dict[str, Any]:
    provider = email_provider(values)
    username = values["username"] if provider is EmailProvider.SMTP else None
    return {
        **values,
        "security": SmtpSecurity(values["security"]),
        "provider": provider,
        "from_address": values["from_address"] or username,
    }


@kind_type("EMAIL", _email_view)
@strawberry.type
class EmailChannel(Channel):
    to: list[str]
    smtp_host: str | None
    smtp_port: int
    security: SmtpSecurity
    username: str | None
    password_set: bool
    from_address: str | None = strawberry.field(
        description="The address mail is sent from: fromAddress, or the username when that "
        "is blank (SMTP only: SendGrid needs fromAddress)."
    )
    from_name: str | None
    verify_tls: bool
    provider: EmailProvider = strawberry.field(
        description="How mail is sent: SMTP (smtpHost and the rest), or SendGrid's Mail Send "
        "API with sendgridApiKey."
    )
    sendgrid_api_key_set: bool


@kind_type("DISCORD")
@strawberry.type
class DiscordChannel(Channel):
    webhook_url_set: bool
    webhook_url_hint: str | None


@kind_type("TELEGRAM")
@strawberry.type
class TelegramChannel(Channel):
    bot_token_set: bool
    chat_id: str | None


@kind_type("TEAMS")
@strawberry.type
class TeamsChannel(Channel):
    webhook_url_set: bool
    webhook_url_hint: str | None


def _common_values(row: tables.ChannelRow) -> dict[str, Any]:
    return {
        "id": strawberry.ID(row.id),
        "kind": ChannelKind(row.kind),
        "name": row.name,
        "enabled": row.enabled,
        "configured": is_configured(row),
        "event_types": row.event_types,
        "event_categories": row.event_categories,
        "min_priority": Priority(row.min_priority),
        "metadata_match": row.metadata_match,
        "mode": DeliveryMode(row.mode),
        "muted_until": mute_in_force(row.muted_until, utcnow()),
        "max_retries": row.max_retries,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_test_data": row.last_test,
    }


def _declared_values(row: tables.ChannelRow) -> dict[str, Any]:
    """From the kind's declared fields: ``<secret>_set``, ``<url>_hint``, plain config."""
    values: dict[str, Any] = {}
    for item in kind_for(row.kind).fields:
        if not item.private:
            values[item.stored_as] = copy.copy(row.config.get(item.stored_as, item.default))
            continue
        values[f"{item.stored_as}_set"] = item.stored_as in row.secrets_set
        if item.hinted:
            values[f"{item.stored_as}_hint"] = row.hints.get(item.stored_as)
        if item.shows is not None:
            shown = item.shows(None)
            values.update({key: copy.copy(row.config.get(key, shown[key])) for key in shown})
    return values


def channel_from_row(row: tables.ChannelRow) -> Channel:
    """The GraphQL view of a stored channel: plain config, ``*Set`` flags and hints only."""
    try:
        cls, view = KIND_TYPES[row.kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {row.kind}") from None
    values = _declared_values(row)
    if view is not None:
        values = view(values)
    shown = {item.name for item in dataclasses.fields(cls)}
    return cls(**_common_values(row), **{k: v for k, v in values.items() if k in shown})


# -- events and deliveries ---------------------------------------------------------------


# Events, deliveries and attempts: every field carries its permission, wherever the type
# is reached from (tests/api/test_field_permissions.py walks the schema for each role).


def _editors() -> Any:
    return strawberry.field(permission_classes=EDITORS)


def _event_readers() -> Any:
    return strawberry.field(permission_classes=EVENT_READERS)


@strawberry.type
class DeliveryAttempt:
    number: int = _editors()
    started_at: datetime = _editors()
    duration_ms: float = _editors()
    ok: bool = _editors()
    status_code: int | None = _editors()
    error: str | None = _editors()

    @classmethod
    def from_row(cls, row: tables.DeliveryAttemptRow) -> DeliveryAttempt:
        return cls(
            number=row.number,
            started_at=row.started_at,
            duration_ms=row.duration_ms,
            ok=row.ok,
            status_code=row.status_code,
            error=row.error,
        )


@strawberry.type
class Event:
    id: strawberry.ID = _event_readers()
    type: str = _event_readers()
    title: str = _event_readers()
    detail: str | None = _event_readers()
    metadata: JSON = _event_readers()
    priority: Priority = _event_readers()
    dedup_key: str | None = _event_readers()
    source: str | None = _event_readers()
    occurred_at: datetime = _event_readers()
    created_at: datetime = _event_readers()

    @strawberry.field(extensions=[RefuseBesideData(Role.EDITOR, Role.ADMIN)])
    async def deliveries(self, info: Info) -> list[Delivery]:
        rows = await delivery_service.deliveries_by_event_loader(info.context).load(str(self.id))
        return [Delivery.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: tables.EventRow) -> Event:
        return cls(
            id=strawberry.ID(row.id),
            type=row.type,
            title=row.title,
            detail=row.detail,
            metadata=JSON(row.metadata_),
            priority=Priority(row.priority),
            dedup_key=row.dedup_key,
            source=row.source,
            occurred_at=row.occurred_at,
            created_at=row.created_at,
        )


@strawberry.type
class Delivery:
    id: strawberry.ID = _editors()
    channel_kind: ChannelKind = _editors()
    status: DeliveryStatus = _editors()
    attempt_count: int = _editors()
    next_attempt_at: datetime | None = _editors()
    last_error: str | None = _editors()
    last_status_code: int | None = _editors()
    created_at: datetime = _editors()
    delivered_at: datetime | None = _editors()
    reason: str | None = strawberry.field(
        permission_classes=EDITORS,
        description="Why it was suppressed (muted, disabled, deduplicated); null when it was not.",
    )
    event_id: strawberry.Private[str]
    channel_id: strawberry.Private[str | None]

    @strawberry.field(permission_classes=EDITORS)
    async def event(self, info: Info) -> Event:
        row = await delivery_service.event_loader(info.context).load(self.event_id)
        return Event.from_row(row)

    @strawberry.field(permission_classes=EDITORS)
    async def channel(self, info: Info) -> Channel | None:
        if self.channel_id is None:
            return None
        row = await delivery_service.channel_loader(info.context).load(self.channel_id)
        return channel_from_row(row) if row else None

    @strawberry.field(permission_classes=EDITORS)
    async def attempts(self, info: Info) -> list[DeliveryAttempt]:
        rows = await delivery_service.attempts_loader(info.context).load(str(self.id))
        return [DeliveryAttempt.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: tables.DeliveryRow) -> Delivery:
        return cls(
            id=strawberry.ID(row.id),
            channel_kind=ChannelKind(row.channel_kind),
            status=DeliveryStatus(row.status),
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            last_status_code=row.last_status_code,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            reason=_reason(row),
            event_id=row.event_id,
            channel_id=row.channel_id,
        )


def _reason(row: tables.DeliveryRow) -> str | None:
    # A row the worker suppressed (its channel muted or disabled after routing) keeps the
    # worker's sentence in last_error: it is the reason all the same.
    if row.reason is None and row.status == DeliveryStatus.SUPPRESSED:
        return row.last_error
    return row.reason


# -- catalog, status, tokens, audit ------------------------------------------------------


@strawberry.type
class EventType:
    name: str
    category: str
    description: str
    default_priority: Priority
    enabled: bool
    built_in: bool
    dedup_window_seconds: int | None

    @classmethod
    def from_row(cls, row: tables.EventTypeRow) -> EventType:
        return cls(
            name=row.name,
            category=row.category,
            description=row.description,
            default_priority=Priority(row.default_priority),
            enabled=row.enabled,
            built_in=row.built_in,
            dedup_window_seconds=row.dedup_window_seconds,
        )


@strawberry.type
class NotificationStatus:
    configured: bool
    can_send_test: bool
    channel_count: int
    pending_deliveries: int
    failed_deliveries: int


@strawberry.type
class ApiToken:
    id: strawberry.ID
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: tables.ApiTokenRow) -> ApiToken:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    action: str
    target: str | None
    details: JSON | None

    @classmethod
    def from_row(cls, row: tables.AuditEntryRow) -> AuditEntry:
        return cls(
            id=strawberry.ID(row.id),
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            details=None if row.details is None else JSON(row.details),
        )


@strawberry.type
class Viewer:
    name: str
    role: Role


# -- connections and payloads ------------------------------------------------------------


def _page_info(page: Page[Any]) -> PageInfo:
    return PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)


@strawberry.type
class EventConnection:
    nodes: list[Event]
    page_info: PageInfo
    total_count: int = strawberry.field(description=TOTAL_COUNT_DESCRIPTION)

    @classmethod
    def from_page(cls, page: Page[tables.EventRow]) -> EventConnection:
        return cls(
            nodes=[Event.from_row(r) for r in page.nodes],
            page_info=_page_info(page),
            total_count=page.total_count,
        )


@strawberry.type
class DeliveryConnection:
    nodes: list[Delivery]
    page_info: PageInfo
    total_count: int = strawberry.field(description=TOTAL_COUNT_DESCRIPTION)

    @classmethod
    def from_page(cls, page: Page[tables.DeliveryRow]) -> DeliveryConnection:
        nodes = [Delivery.from_row(r) for r in page.nodes]
        return cls(nodes=nodes, page_info=_page_info(page), total_count=page.total_count)


@strawberry.type
class AuditEntryConnection:
    nodes: list[AuditEntry]
    page_info: PageInfo
    total_count: int = strawberry.field(description=TOTAL_COUNT_DESCRIPTION)

    @classmethod
    def from_page(cls, page: Page[tables.AuditEntryRow]) -> AuditEntryConnection:
        nodes = [AuditEntry.from_row(r) for r in page.nodes]
        return cls(nodes=nodes, page_info=_page_info(page), total_count=page.total_count)


@strawberry.type
class SaveChannelPayload:
    channel: Channel | None
    errors: list[UserError]


@strawberry.type
class DeleteChannelPayload:
    deleted_id: strawberry.ID | None
    errors: list[UserError]


@strawberry.type
class SendTestPayload:
    results: list[ChannelTestResult]
    errors: list[UserError]


@strawberry.type
class EmitEventPayload:
    event: Event | None
    deduplicated: bool
    errors: list[UserError]


@strawberry.type
class EmitEventsPayload:
    events: list[Event | None]
    errors: list[UserError]


@strawberry.type
class CreateApiTokenPayload:
    token: str | None = strawberry.field(description="Shown once.")
    api_token: ApiToken | None
    errors: list[UserError]
