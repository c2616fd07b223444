"""Issue 9: a mute with an end time ends by itself. mutedUntil reads null once it has
passed and routing sends again; ``expire_mutes`` clears passed mutes once, whichever
process runs it, with one audit entry per channel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.api.routing_support import emit, mute, save_webhook
from tests.support import Api
from tocsin.periodic import PeriodicRunner, cluster_jobs
from tocsin.settings import Settings
from tocsin.storage.database import Database
from tocsin.storage.mutes import expire_mutes
from tocsin.storage.tables import AuditEntryRow, ChannelRow
from tocsin.storage.types import utcnow

MUTED = "query($id: ID!) { channel(id: $id) { mutedUntil } }"
ROWS = """query($id: ID!) { event(id: $id) { deliveries { status reason } } }"""
ENDED = """{ auditLog(first: 50, action: "channel.mute_ended") {
  nodes { actor action target details } } }"""


def iso(at: datetime) -> str:
    return at.isoformat()


async def test_muted_until_reads_null_once_passed_and_routing_sends_again(api: Api) -> None:
    channel_id = await save_webhook(api, "hook")
    # given a mute that ends in a second
    until = utcnow() + timedelta(seconds=1)
    muted = await mute(api, channel_id, iso(until))
    assert datetime.fromisoformat(muted["channel"]["mutedUntil"]) == until
    during = await emit(api, title="during")
    assert (await api.ok(ROWS, {"id": during["event"]["id"]}))["event"]["deliveries"][0][
        "status"
    ] == "SUPPRESSED"
    # when it has passed (nothing has cleared it in storage)
    await asyncio.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.05)
    # then it reads null at once, and an event is sent again
    assert (await api.ok(MUTED, {"id": channel_id}))["channel"]["mutedUntil"] is None
    after = await emit(api, title="after")
    rows = (await api.ok(ROWS, {"id": after["event"]["id"]}))["event"]["deliveries"]
    assert rows == [{"status": "PENDING", "reason": None}]


async def muted_channels(api: Api, now: datetime) -> dict[str, str]:
    """{name: id}: two mutes that have passed, one still in force, one channel never muted."""
    ids = {name: await save_webhook(api, name) for name in ("passed", "just", "future", "open")}
    for name, until in (
        ("passed", now - timedelta(hours=1)),
        ("just", now),  # a mute ends at its very instant
        ("future", now + timedelta(hours=1)),
    ):
        await mute(api, ids[name], iso(until))
    return ids


async def stored_mutes(db: Database) -> dict[str, datetime | None]:
    async with db.read() as session:
        rows = (await session.scalars(select(ChannelRow))).all()
    return {row.name: row.muted_until for row in rows}


async def test_expire_mutes_clears_passed_mutes_with_one_audit_entry_each(api: Api) -> None:
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    ids = await muted_channels(api, now)
    db = api.services.db
    # when the passed mutes are expired
    async with db.write() as session:
        ended = await expire_mutes(session, now=now)
    # then exactly those are cleared in storage
    assert sorted(ended) == sorted([ids["passed"], ids["just"]])
    stored = await stored_mutes(db)
    assert stored["passed"] is None and stored["just"] is None and stored["open"] is None
    assert stored["future"] == now + timedelta(hours=1)
    # and each has one entry by "tocsin"
    entries = (await api.ok(ENDED))["auditLog"]["nodes"]
    assert sorted(entries, key=lambda e: e["target"]) == sorted(
        [
            {
                "actor": "tocsin",
                "action": "channel.mute_ended",
                "target": ids[name],
                "details": {"kind": "WEBHOOK", "name": name},
            }
            for name in ("passed", "just")
        ],
        key=lambda e: e["target"],
    )
    # and a second run finds nothing left to end
    async with db.write() as session:
        assert await expire_mutes(session, now=now) == []
    assert len((await api.ok(ENDED))["auditLog"]["nodes"]) == 2


async def test_two_processes_expiring_at_once_end_each_mute_once(
    api: Api, settings: Settings
) -> None:
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    ids = await muted_channels(api, now)
    # given two processes, each with its own connections
    databases = [Database.from_settings(settings) for _ in range(2)]

    async def run(db: Database) -> list[str]:
        async with db.write() as session:
            return await expire_mutes(session, now=now)

    try:
        # when both expire mutes at the same moment
        results = await asyncio.gather(*(run(db) for db in databases))
    finally:
        for db in databases:
            await db.dispose()
    # then each passed mute was ended by exactly one of them, and audited once
    assert sorted(results[0] + results[1]) == sorted([ids["passed"], ids["just"]])
    async with api.services.db.read() as session:
        audited = (
            await session.scalars(
                select(AuditEntryRow.target).where(AuditEntryRow.action == "channel.mute_ended")
            )
        ).all()
    assert sorted(audited) == sorted([ids["passed"], ids["just"]])


async def test_the_cluster_runner_ends_passed_mutes(api: Api, settings: Settings) -> None:
    # given a mute that has passed, and the periodic work every worker process runs
    now = utcnow()
    ids = await muted_channels(api, now)
    runner = PeriodicRunner(api.services.db, cluster_jobs(settings), tick=0)
    # when its jobs are looked at once
    ran = await runner.run_due(now)
    # then the mute-expiry job ran and the passed mutes are cleared and audited
    assert "mute-expiry" in ran
    stored = await stored_mutes(api.services.db)
    assert stored["passed"] is None and stored["future"] is not None
    targets = {e["target"] for e in (await api.ok(ENDED))["auditLog"]["nodes"]}
    assert targets == {ids["passed"], ids["just"]}
