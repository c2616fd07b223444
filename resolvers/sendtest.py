"""sendTest: a test event sent now to each selected channel, concurrently, one result each."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import col

from tocsin.channels.base import Destination, Message, SendContext, SendResult
from tocsin.channels.registry import ChannelKind, is_configured, kind_for
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, not_found
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.tables import ChannelRow
from tocsin.storage.types import new_id, utcnow

TEST_TITLE = "Test notification from Tocsin"
TEST_DETAIL = "If you can read this, this channel is set up correctly."


@dataclass(frozen=True, slots=True)
class TestOutcome:
    channel: ChannelRow
    result: SendResult
    tested_at: datetime


def destination_for(ctx: Context, row: ChannelRow) -> Destination:
    return Destination(
        channel_id=row.id,
        kind=row.kind,
        name=row.name,
        config=row.config,
        secrets=decrypt_secrets(ctx.box, row),
    )


async def _select(
    ctx: Context, kind: ChannelKind | None, channel_id: str | None
) -> tuple[list[ChannelRow], list[Problem]]:
    async with ctx.db.read() as session:
        if channel_id is not None:
            row = await session.get(ChannelRow, channel_id)
            if row is None:
                return [], [not_found("channel", "channelId")]
            rows = [row]
        else:
            stmt = select(ChannelRow).where(col(ChannelRow.enabled).is_(True))
            if kind is not None:
                stmt = stmt.where(col(ChannelRow.kind) == kind.value)
            rows = list((await session.scalars(stmt.order_by(col(ChannelRow.created_at)))).all())
    rows = [row for row in rows if is_configured(row)]
    if not rows:
        what = "this channel" if channel_id else (kind.value.lower() if kind else "any")
        return [], [
            Problem(
                ["channelId" if channel_id else "kind"],
                "NO_CHANNEL_CONFIGURED",
                f"No {what} channel is configured: save a destination first."
                if not channel_id
                else "This channel is not fully configured yet.",
            )
        ]
    return rows, []


async def _send_one(ctx: Context, context: SendContext, row: ChannelRow) -> SendResult:
    message = Message(
        delivery_id="test_" + new_id(),
        event_id="test_" + new_id(),
        event_type="test",
        priority="INFO",
        title=TEST_TITLE,
        detail=TEST_DETAIL,
        metadata={"channel": row.name, "requested_by": ctx.principal.name},
        occurred_at=utcnow(),
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(context.timeout + 1):
            return await kind_for(row.kind).send(destination_for(ctx, row), message, context)
    except TimeoutError:
        elapsed = (time.perf_counter() - started) * 1000
        return SendResult(ok=False, latency_ms=elapsed, error="timed out", retryable=True)


async def send_test(
    ctx: Context, *, kind: ChannelKind | None, channel_id: str | None
) -> tuple[list[TestOutcome], list[Problem]]:
    rows, problems = await _select(ctx, kind, channel_id)
    if problems:
        return [], problems
    context = ctx.services.send_context
    if context is None:
        raise RuntimeError("sendTest needs services opened with HTTP")
    results = await asyncio.gather(*(_send_one(ctx, context, row) for row in rows))
    tested_at = utcnow()
    outcomes = [
        TestOutcome(row, result, tested_at) for row, result in zip(rows, results, strict=True)
    ]
    async with ctx.db.write() as session:
        for outcome in outcomes:
            last_test = {
                "ok": outcome.result.ok,
                "status_code": outcome.result.status_code,
                "error": outcome.result.error,
                "latency_ms": outcome.result.latency_ms,
                "tested_at": tested_at.isoformat(),
            }
            outcome.channel.last_test = last_test
            await session.execute(
                update(ChannelRow)
                .where(col(ChannelRow.id) == outcome.channel.id)
                .values(last_test=last_test)
            )
        record_audit(
            session,
            actor=ctx.principal.name,
            action="channel.test",
            target=channel_id or (kind.value if kind else "all"),
            details={
                "results": [
                    {
                        "channel_id": o.channel.id,
                        "name": o.channel.name,
                        "kind": o.channel.kind,
                        "ok": o.result.ok,
                        "status_code": o.result.status_code,
                        "error": o.result.error,
                    }
                    for o in outcomes
                ]
            },
        )
    return outcomes, []
