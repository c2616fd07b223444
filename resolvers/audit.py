"""The audit log: who changed what. Secrets appear only as "set" or "cleared"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.resolvers.context import Context
from tocsin.resolvers.pagination import Page, paginate
from tocsin.storage.tables import AuditEntryRow


def record_audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntryRow:
    """Adds an entry to the caller's transaction, so it commits with the change it records."""
    entry = AuditEntryRow(actor=actor, action=action, target=target, details=details)
    session.add(entry)
    return entry


async def list_audit_entries(
    ctx: Context, *, first: int, after: str | None, action: str | None
) -> Page[AuditEntryRow]:
    stmt = select(AuditEntryRow)
    if action:
        stmt = stmt.where(col(AuditEntryRow.action) == action)
    async with ctx.db.read() as session:
        return await paginate(session, stmt, AuditEntryRow.id, first=first, after=after)
