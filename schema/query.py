"""The root Query: each field checks its role, calls a resolver, maps rows to types."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from tocsin.channels.registry import is_configured
from tocsin.resolvers import audit, channels, deliveries, event_types, tokens
from tocsin.schema.enums import ChannelKind
from tocsin.schema.inputs import DeliveryFilter
from tocsin.schema.permissions import ADMINS, ANYONE, EDITORS, READERS
from tocsin.schema.routing import EXPLAIN_DESCRIPTION, explain_routing
from tocsin.schema.types import (
    ApiToken,
    AuditEntryConnection,
    Channel,
    DeliveryConnection,
    Event,
    EventConnection,
    EventType,
    NotificationStatus,
    Viewer,
    channel_from_row,
)
from tocsin.storage.enums import DeliveryStatus


@strawberry.type
class Query:
    @strawberry.field(permission_classes=ANYONE)
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        return Viewer(name=principal.name, role=principal.role)

    @strawberry.field(permission_classes=READERS)
    async def notification_status(self, info: Info) -> NotificationStatus:
        rows = await channels.list_channels(info.context, kind=None)
        configured = [row for row in rows if is_configured(row)]
        counts = await deliveries.delivery_counts(info.context)
        pending = sum(
            counts.get(s.value, 0)
            for s in (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
        )
        return NotificationStatus(
            configured=bool(configured),
            can_send_test=any(row.enabled for row in configured),
            channel_count=len(rows),
            pending_deliveries=pending,
            failed_deliveries=counts.get(DeliveryStatus.FAILED.value, 0),
        )

    @strawberry.field(permission_classes=READERS)
    async def channels(self, info: Info, kind: ChannelKind | None = None) -> list[Channel]:
        rows = await channels.list_channels(info.context, kind=kind)
        return [channel_from_row(row) for row in rows]

    @strawberry.field(permission_classes=READERS)
    async def channel(self, info: Info, id: strawberry.ID) -> Channel | None:
        row = await channels.get_channel(info.context, str(id))
        return channel_from_row(row) if row else None

    @strawberry.field(
        permission_classes=READERS,
        description="The catalog; with category, that category's types; with search, the "
        "types whose name or description holds it (ignoring case).",
    )
    async def event_types(
        self, info: Info, category: str | None = None, search: str | None = None
    ) -> list[EventType]:
        rows = await event_types.list_event_types(info.context, category=category, search=search)
        return [EventType.from_row(row) for row in rows]

    explain_routing = strawberry.field(
        resolver=explain_routing, permission_classes=EDITORS, description=EXPLAIN_DESCRIPTION
    )

    @strawberry.field(permission_classes=EDITORS)
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        row = await deliveries.get_event(info.context, str(id))
        return Event.from_row(row) if row else None

    @strawberry.field(permission_classes=EDITORS)
    async def events(
        self, info: Info, first: int | None = 20, after: str | None = None, type: str | None = None
    ) -> EventConnection:
        page = await deliveries.list_events(
            info.context, first=20 if first is None else first, after=after, event_type=type
        )
        return EventConnection.from_page(page)

    @strawberry.field(permission_classes=EDITORS)
    async def deliveries(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: DeliveryFilter | None = None,
    ) -> DeliveryConnection:
        query = deliveries.DeliveryQuery()
        if filter is not None:
            query = deliveries.DeliveryQuery(
                event_type=filter.event_type,
                status=filter.status,
                channel_id=str(filter.channel_id) if filter.channel_id else None,
                kind=filter.kind,
                since=filter.since,
                until=filter.until,
            )
        page = await deliveries.list_deliveries(
            info.context, first=20 if first is None else first, after=after, query=query
        )
        return DeliveryConnection.from_page(page)

    @strawberry.field(permission_classes=ADMINS)
    async def audit_log(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        action: str | None = None,
    ) -> AuditEntryConnection:
        page = await audit.list_audit_entries(
            info.context, first=20 if first is None else first, after=after, action=action
        )
        return AuditEntryConnection.from_page(page)

    @strawberry.field(permission_classes=ADMINS)
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        return [ApiToken.from_row(row) for row in await tokens.list_tokens(info.context.db)]
