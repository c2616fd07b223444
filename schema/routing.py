"""explainRouting's types and resolver: what routing would do with an event, and why."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from tocsin.resolvers.explain import explain_routing as explain
from tocsin.schema.inputs import EmitEventInput
from tocsin.schema.mutation import _emit_request
from tocsin.schema.types import Channel, channel_from_row
from tocsin.storage.enums import RouteOutcome

strawberry.enum(RouteOutcome)

EXPLAIN_DESCRIPTION = (
    "Routes the event without storing or sending anything. EDITOR.\n"
    "One decision per channel, oldest first, from the same validation, routing and dedup "
    "that emitEvent uses (idempotencyKey is not looked up). Input emitEvent would refuse is "
    "answered with a GraphQL error whose extensions.code is the first UserError's code and "
    "whose extensions.userErrors lists them all (field, code, message), and no data."
)


@strawberry.type(description="What routing would do with an event for one channel, and why.")
class RouteDecision:
    channel: Channel
    outcome: RouteOutcome
    reason: str


async def explain_routing(info: Info, input: EmitEventInput) -> list[RouteDecision]:
    decisions = await explain(info.context, _emit_request(input))
    return [
        RouteDecision(channel=channel_from_row(row), outcome=d.outcome, reason=d.reason)
        for row, d in decisions
    ]
