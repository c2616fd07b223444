"""explainRouting: what emitEvent would do with an event for every channel, and why,
without storing or sending anything."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from tocsin.resolvers.context import Context
from tocsin.resolvers.events import EmitRequest, prepare_event
from tocsin.resolvers.problems import ProblemError, Problems
from tocsin.resolvers.routing import route
from tocsin.storage.ingest import Decision, dedup_reason, judge
from tocsin.storage.tables import ChannelRow
from tocsin.storage.types import utcnow


async def explain_routing(ctx: Context, request: EmitRequest) -> list[tuple[ChannelRow, Decision]]:
    """One decision per channel, oldest channel first: the same validation, routing and
    dedup judgement as emitEvent. Raises ProblemError for input emitEvent would refuse."""
    problems = Problems()
    types = await ctx.services.catalog.get()
    now = utcnow()
    new = prepare_event(
        request, types, source=ctx.principal.name, now=now, problems=problems, prefix=[]
    )
    if new is None:
        raise ProblemError(problems.items)
    stmt = select(ChannelRow).order_by(col(ChannelRow.created_at), col(ChannelRow.id))
    async with ctx.db.read() as session:
        dedup = await dedup_reason(session, new, now=now)
        channels = list((await session.scalars(stmt)).all())
    return [(channel, judge(route(channel, new, now), dedup)) for channel in channels]
