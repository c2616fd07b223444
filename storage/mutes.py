"""Mutes end by themselves: a mute is in force only before its end, and ``expire_mutes``
clears the ones that have passed, once, whichever process runs it first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.storage.tables import AuditEntryRow, ChannelRow
from tocsin.storage.types import new_id

__all__ = ["MUTE_ENDED", "SYSTEM_ACTOR", "expire_mutes", "mute_in_force"]

MUTE_ENDED = "channel.mute_ended"
SYSTEM_ACTOR = "tocsin"


def mute_in_force(muted_until: datetime | None, now: datetime) -> datetime | None:
    """The end of a mute that still holds at ``now`` (it ends at that very instant)."""
    if muted_until is not None and muted_until > now:
        return muted_until
    return None


async def expire_mutes(session: AsyncSession, *, now: datetime) -> list[str]:
    """Unmute every channel whose mute has passed, with one audit entry each; the ids.

    One UPDATE ... RETURNING decides which rows end: a second process running it at the
    same moment finds them unmuted already (PostgreSQL re-checks the condition on the row
    it waited for), so each mute's end is recorded exactly once.
    """
    stmt = (
        update(ChannelRow)
        .where(col(ChannelRow.muted_until).is_not(None), col(ChannelRow.muted_until) <= now)
        .values(muted_until=None, updated_at=now)
        .returning(col(ChannelRow.id), col(ChannelRow.kind), col(ChannelRow.name))
        .execution_options(synchronize_session=False)
    )
    ended = (await session.execute(stmt)).all()
    if ended:
        entries = [
            {
                "id": new_id(),
                "at": now,
                "actor": SYSTEM_ACTOR,
                "action": MUTE_ENDED,
                "target": channel_id,
                "details": {"kind": kind, "name": name},
            }
            for channel_id, kind, name in ended
        ]
        await session.execute(insert(AuditEntryRow), entries)
    return [channel_id for channel_id, _, _ in ended]
