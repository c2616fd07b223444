"""emitEvent and emitEvents answered from graphql-core's own coerced arguments.

The two fields every other service calls, often: Strawberry's per-call conversion of
the arguments into EmitEventInput objects (a camel-case name, a type resolution and a
conversion call per field of each input) and its permission extension around the
resolver were 14 % of the server's CPU under emit load (issue 11), more than the rest of
the resolver. graphql-core has already coerced and validated every value (the enum is a
Priority, occurredAt a datetime, metadata parsed JSON), so the resolvers installed here
read the raw dicts, check the role as ``permissions.EMITTERS`` does, and answer through
the same ``emit_one`` / ``emit_many`` as the Strawberry methods, which still define the
fields (the schema, its descriptions) and would answer the same without this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLResolveInfo

from tocsin.resolvers.events import EmitRequest
from tocsin.schema.mutation import emit_many, emit_one
from tocsin.schema.permissions import EMITTERS, FORBIDDEN
from tocsin.schema.types import EmitEventPayload, EmitEventsPayload

__all__ = ["install_emit_fast_path"]

_EMITTER = EMITTERS[0]()


def install_emit_fast_path(schema: strawberry.Schema) -> None:
    """Answer Mutation.emitEvent and Mutation.emitEvents of ``schema`` from raw arguments."""
    fields = schema._schema.mutation_type.fields  # type: ignore[union-attr]
    fields["emitEvent"].resolve = _emit_event
    fields["emitEvents"].resolve = _emit_events


def request_of(raw: Mapping[str, Any]) -> EmitRequest:
    """One coerced EmitEventInput (GraphQL names; absent optional fields are None)."""
    return EmitRequest(
        type=raw["type"],
        title=raw["title"],
        detail=raw.get("detail"),
        metadata=raw.get("metadata"),
        priority=raw.get("priority"),
        dedup_key=raw.get("dedupKey"),
        idempotency_key=raw.get("idempotencyKey"),
        occurred_at=raw.get("occurredAt"),
    )


def _allow(info: GraphQLResolveInfo) -> None:
    if not _EMITTER.has_permission(None, info):  # type: ignore[arg-type]  # reads .context
        raise GraphQLError(_EMITTER.message or "", extensions={"code": FORBIDDEN})


async def _emit_event(
    _root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]
) -> EmitEventPayload:
    _allow(info)
    return await emit_one(info.context, request_of(input))


async def _emit_events(
    _root: Any, info: GraphQLResolveInfo, inputs: list[Mapping[str, Any]]
) -> EmitEventsPayload:
    _allow(info)
    return await emit_many(info.context, [request_of(raw) for raw in inputs])
