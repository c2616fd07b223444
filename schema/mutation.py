"""The root Mutation. Expected failures come back as ``errors: [UserError]``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from tocsin.channels.registry import kind_for
from tocsin.resolvers import channels, deliveries, event_types, sendtest, tokens
from tocsin.resolvers.context import Context
from tocsin.resolvers.events import EmitRequest, emit_events
from tocsin.resolvers.problems import ProblemError, not_found
from tocsin.schema.enums import ChannelKind, Role
from tocsin.schema.inputs import (
    KIND_INPUTS,
    ChannelInputBase,
    EmitEventInput,
    EventTypeInput,
    camel_case,
    present_fields,
)
from tocsin.schema.permissions import ADMINS, EDITORS, EMITTERS
from tocsin.schema.smtp_test import test_smtp_connection_field
from tocsin.schema.types import (
    ApiToken,
    ChannelTestResult,
    CreateApiTokenPayload,
    DeleteChannelPayload,
    Delivery,
    EmitEventPayload,
    EmitEventsPayload,
    Event,
    EventType,
    SaveChannelPayload,
    SendTestPayload,
    channel_from_row,
    user_errors,
)


def channel_changes(kind: str, data: ChannelInputBase) -> dict[str, Any]:
    """The fields the client sent, a kind's own by the storage key its module declares."""
    keys = {item.input: item.stored_as for item in kind_for(kind).fields}
    return {keys.get(camel_case(name), name): v for name, v in present_fields(data).items()}


async def _save(info: Info, kind: str, data: ChannelInputBase) -> SaveChannelPayload:
    channel_id = str(data.id) if data.id is not None else None
    changes = channel_changes(kind, data)
    row, problems = await channels.save_channel(info.context, kind, channel_id, changes)
    return SaveChannelPayload(
        channel=channel_from_row(row) if row else None, errors=user_errors(problems)
    )


def _save_mutation(kind: str, input_type: type[ChannelInputBase]) -> Any:
    """``save<Label>Channel(input: <Label>ChannelInput!)`` for one kind."""

    async def save(info: Info, input: ChannelInputBase) -> SaveChannelPayload:
        return await _save(info, kind, input)

    save.__annotations__ = {"info": Info, "input": input_type, "return": SaveChannelPayload}
    return strawberry.mutation(resolver=save, permission_classes=EDITORS)


def with_save_mutations(cls: type) -> type:
    """The class with one save mutation per registered kind input, ahead of its own fields."""
    saves = {
        f"save_{kind_for(kind).label.lower()}_channel": _save_mutation(kind, input_type)
        for kind, input_type in KIND_INPUTS.items()
    }
    body = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, cls.__bases__, {**saves, **body})


def _emit_request(data: EmitEventInput) -> EmitRequest:
    return EmitRequest(
        type=data.type,
        title=data.title,
        detail=data.detail,
        metadata=data.metadata,
        priority=data.priority,
        dedup_key=data.dedup_key,
        idempotency_key=data.idempotency_key,
        occurred_at=data.occurred_at,
    )


async def emit_one(ctx: Context, request: EmitRequest) -> EmitEventPayload:
    written, problems = await emit_events(ctx, [request], batch=False)
    first = written[0] if written else None
    return EmitEventPayload(
        event=Event.from_row(first.event) if first else None,
        deduplicated=bool(first and first.deduplicated),
        errors=user_errors(problems),
    )


async def emit_many(ctx: Context, requests: list[EmitRequest]) -> EmitEventsPayload:
    written, problems = await emit_events(ctx, requests, batch=True)
    return EmitEventsPayload(
        events=[Event.from_row(w.event) if w else None for w in written],
        errors=user_errors(problems),
    )


@strawberry.type
@with_save_mutations
class Mutation:
    @strawberry.mutation(permission_classes=EDITORS)
    async def delete_channel(self, info: Info, id: strawberry.ID) -> DeleteChannelPayload:
        deleted, problems = await channels.delete_channel(info.context, str(id))
        return DeleteChannelPayload(
            deleted_id=strawberry.ID(deleted) if deleted else None, errors=user_errors(problems)
        )

    @strawberry.mutation(
        permission_classes=EDITORS,
        description="Mutes the channel until the given time (its deliveries are recorded as "
        "SUPPRESSED); a null `until` unmutes it.",
    )
    async def mute_channel(
        self, info: Info, id: strawberry.ID, until: datetime | None = None
    ) -> SaveChannelPayload:
        row, problems = await channels.mute_channel(info.context, str(id), until)
        return SaveChannelPayload(
            channel=channel_from_row(row) if row else None, errors=user_errors(problems)
        )

    @strawberry.mutation(
        permission_classes=EDITORS,
        description="Sends a test event now to every configured channel, or to one kind or "
        "one channel; one result per channel.\nWith nothing configured it answers the "
        "UserError code NO_CHANNEL_CONFIGURED.",
    )
    async def send_test(
        self, info: Info, kind: ChannelKind | None = None, channel_id: strawberry.ID | None = None
    ) -> SendTestPayload:
        outcomes, problems = await sendtest.send_test(
            info.context, kind=kind, channel_id=str(channel_id) if channel_id else None
        )
        results = []
        for outcome in outcomes:
            results.append(
                ChannelTestResult(
                    channel=channel_from_row(outcome.channel),
                    ok=outcome.result.ok,
                    status_code=outcome.result.status_code,
                    error=outcome.result.error,
                    latency_ms=outcome.result.latency_ms,
                    tested_at=outcome.tested_at,
                )
            )
        return SendTestPayload(results=results, errors=user_errors(problems))

    test_smtp_connection = test_smtp_connection_field

    # At run time schema/emit_fast_path.py answers these two from the raw arguments; the
    # methods define the fields and stay correct on their own.
    @strawberry.mutation(permission_classes=EMITTERS)
    async def emit_event(self, info: Info, input: EmitEventInput) -> EmitEventPayload:
        return await emit_one(info.context, _emit_request(input))

    @strawberry.mutation(permission_classes=EMITTERS, description="Up to 1000 events in one call.")
    async def emit_events(self, info: Info, inputs: list[EmitEventInput]) -> EmitEventsPayload:
        return await emit_many(info.context, [_emit_request(i) for i in inputs])

    @strawberry.mutation(permission_classes=EDITORS)
    async def retry_delivery(self, info: Info, id: strawberry.ID) -> Delivery | None:
        row = await deliveries.retry_delivery(info.context, str(id))
        if row is None:
            raise ProblemError([not_found("delivery")])
        return Delivery.from_row(row)

    @strawberry.mutation(
        permission_classes=ADMINS,
        description="Adds an event type, or changes one (built-ins too: enabled, "
        "defaultPriority, dedupWindowSeconds).",
    )
    async def register_event_type(self, info: Info, input: EventTypeInput) -> EventType | None:
        changes: dict[str, Any] = present_fields(input)
        changes.pop("name", None)
        row, problems = await event_types.register_event_type(info.context, input.name, changes)
        info.context.services.catalog.invalidate()
        if problems:
            raise ProblemError(problems)
        return EventType.from_row(row) if row else None

    @strawberry.mutation(permission_classes=ADMINS)
    async def create_api_token(self, info: Info, name: str, role: Role) -> CreateApiTokenPayload:
        token, row, problems = await tokens.create_token(
            db=info.context.db, actor=info.context.principal.name, name=name, role=role
        )
        return CreateApiTokenPayload(
            token=token,
            api_token=ApiToken.from_row(row) if row else None,
            errors=user_errors(problems),
        )

    @strawberry.mutation(permission_classes=ADMINS)
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> bool:
        services = info.context.services
        return await tokens.revoke_token(
            db=services.db,
            tokens=services.tokens,
            actor=info.context.principal.name,
            token_id=str(id),
        )
