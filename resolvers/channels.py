"""Channels: create, update, mute, delete and read. Secrets are encrypted before storage
and never returned; a saved channel exposes only which secrets are set, and URL hints."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.channels.base import CheckContext, Field, Kind
from tocsin.channels.registry import ChannelKind, kind_for
from tocsin.resolvers import validation as check
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, ProblemError, Problems, not_found
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.enums import DeliveryMode, Priority
from tocsin.storage.tables import ChannelRow, EventTypeRow
from tocsin.storage.types import utcnow

COMMON_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "event_types": None,
    "event_categories": None,
    "min_priority": Priority.INFO.value,
    "metadata_match": None,
    "mode": DeliveryMode.REALTIME.value,
    "max_retries": 3,
}


# -- reading -----------------------------------------------------------------------------


async def list_channels(ctx: Context, *, kind: ChannelKind | None) -> list[ChannelRow]:
    stmt = select(ChannelRow).order_by(col(ChannelRow.created_at), col(ChannelRow.id))
    if kind is not None:
        stmt = stmt.where(col(ChannelRow.kind) == kind.value)
    async with ctx.db.read() as session:
        return list((await session.scalars(stmt)).all())


async def get_channel(ctx: Context, channel_id: str) -> ChannelRow | None:
    async with ctx.db.read() as session:
        return await session.get(ChannelRow, channel_id)


# -- saving ------------------------------------------------------------------------------


async def save_channel(
    ctx: Context, kind: str, channel_id: str | None, changes: dict[str, Any]
) -> tuple[ChannelRow | None, list[Problem]]:
    """Apply ``changes`` (present input fields only, by storage key; None means null) to a
    channel of ``kind`` in one transaction. Nothing is stored when any problem is found.
    """
    spec = kind_for(kind)
    try:
        async with ctx.db.write() as session:
            row = await _load_or_new(session, spec, channel_id)
            creating = channel_id is None
            problems = Problems()
            audit_changes: dict[str, Any] = {}
            known_types = await _event_type_names(session) if "event_types" in changes else set()
            _apply_common(row, spec, changes, problems, audit_changes, known_types, creating)
            if "event_categories" in changes:
                known = await _category_names(session)
                _apply_categories(row, changes["event_categories"], problems, audit_changes, known)
            _apply_config(ctx, row, spec, changes, problems, audit_changes)
            _apply_secrets(ctx, row, spec, changes, problems, audit_changes)
            spec.check_channel(
                problems,
                row.config,
                row.secrets_set,
                changed=changes.keys(),
                allowed_networks=ctx.settings.allowed_private_networks,
            )
            if problems:
                raise ProblemError(problems.items)
            row.updated_at = utcnow()
            session.add(row)
            record_audit(
                session,
                actor=ctx.principal.name,
                action="channel.create" if creating else "channel.update",
                target=row.id,
                details={"kind": spec.kind, "name": row.name, "changes": audit_changes},
            )
    except ProblemError as exc:
        return None, exc.problems
    return row, []


async def _load_or_new(session: AsyncSession, spec: Kind, channel_id: str | None) -> ChannelRow:
    if channel_id is None:
        now = utcnow()
        return ChannelRow(
            kind=spec.kind,
            name=spec.label,
            config=spec.config_defaults(),
            created_at=now,
            updated_at=now,
            **COMMON_DEFAULTS,
        )
    # FOR UPDATE: a concurrent save or key rotation would otherwise overwrite this one
    row = await session.get(ChannelRow, channel_id, with_for_update=True)
    if row is None or row.kind != spec.kind:
        raise ProblemError([not_found(f"{spec.label} channel")])
    return row


async def _event_type_names(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(col(EventTypeRow.name)))).all())


async def _category_names(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(col(EventTypeRow.category)).distinct())).all())


def _apply_categories(
    row: ChannelRow,
    names: list[str] | None,
    problems: Problems,
    audit: dict[str, Any],
    known: set[str],
) -> None:
    if names is not None:
        check.check_event_categories(problems, "eventCategories", names, known)
        names = sorted(set(names))
    audit["event_categories"] = routing_change(row.event_categories, names)
    row.event_categories = names


def routing_change(before: Any, after: Any) -> dict[str, Any]:
    """How the audit log records a change to what a channel receives."""
    return {"before": before, "after": after}


def _apply_common(
    row: ChannelRow,
    spec: Kind,
    changes: dict[str, Any],
    problems: Problems,
    audit: dict[str, Any],
    known_types: set[str],
    creating: bool,
) -> None:
    if "name" in changes:
        name = changes["name"]
        if name is None:
            name = spec.label if creating else row.name
        name = name.strip()
        check.check_name(problems, "name", name)
        row.name = name
        audit["name"] = name
    for key in ("enabled", "min_priority", "mode", "max_retries"):
        if key in changes:
            value = changes[key]
            if value is None:
                value = COMMON_DEFAULTS[key]
            if key == "max_retries":
                check.check_max_retries(problems, "maxRetries", value)
            audit[key] = value if key == "max_retries" else routing_change(getattr(row, key), value)
            setattr(row, key, value)
    if "event_types" in changes:
        names = changes["event_types"]
        if names is not None:
            check.check_event_types(problems, "eventTypes", names, known_types)
            names = sorted(set(names))
        audit["event_types"] = routing_change(row.event_types, names)
        row.event_types = names
    if "metadata_match" in changes:
        value = changes["metadata_match"]
        if value is not None:
            value = check.check_metadata_match(problems, "metadataMatch", value)
        audit["metadata_match"] = routing_change(row.metadata_match, value)
        row.metadata_match = value


def _apply_config(
    ctx: Context,
    row: ChannelRow,
    spec: Kind,
    changes: dict[str, Any],
    problems: Problems,
    audit: dict[str, Any],
) -> None:
    config = dict(row.config)
    context = CheckContext(allowed_networks=ctx.settings.allowed_private_networks)
    for item in spec.fields:
        if item.private or item.stored_as not in changes:
            continue
        value = changes[item.stored_as]
        if isinstance(value, str) and item.strip:
            value = value.strip() or None
        if value is None:
            value = copy.copy(item.default)
        elif item.check is not None:
            value = item.check(problems, item.input, value, context)
        config[item.stored_as] = value
        audit[item.stored_as] = value
    row.config = config


def _apply_secrets(
    ctx: Context,
    row: ChannelRow,
    spec: Kind,
    changes: dict[str, Any],
    problems: Problems,
    audit: dict[str, Any],
) -> None:
    present = [item for item in spec.fields if item.private and item.stored_as in changes]
    if not present:
        return
    secrets = decrypt_secrets(ctx.box, row)
    hints = dict(row.hints)
    for item in present:
        audit[item.stored_as] = _apply_secret(
            ctx, row, spec, item, changes[item.stored_as], secrets, hints, problems
        )
    if problems:
        return
    row.secrets_ciphertext = ctx.box.encrypt(secrets) if secrets else None
    row.secrets_set = sorted(k for k, v in secrets.items() if v)
    row.hints = hints


def _apply_secret(
    ctx: Context,
    row: ChannelRow,
    spec: Kind,
    item: Field,
    value: Any,
    secrets: dict[str, Any],
    hints: dict[str, str],
    problems: Problems,
) -> Any:
    """Set, replace or (null) clear one secret in ``secrets``; answers its audit entry."""
    if value is None:
        secrets.pop(item.stored_as, None)
        hints.pop(item.stored_as, None)
        if item.shows is not None:
            row.config = {**row.config, **item.shows(None)}
        return "cleared"
    audited = item.audits(value) if item.audits is not None else "set"
    if isinstance(value, str):
        value = value.strip() if item.strip else value
        if not value:
            problems.add(item.input, "REQUIRED", "Enter a value, or send null to clear it.")
            return audited
    context = CheckContext(
        ctx.settings.allowed_private_networks, stored=secrets.get(item.stored_as)
    )
    checked = item.check(problems, item.input, value, context) if item.check else value
    if checked is None:
        return audited
    secrets[item.stored_as] = checked
    hint = spec.hint(item, checked)
    if hint is not None:
        hints[item.stored_as] = hint
    if item.shows is not None:
        row.config = {**row.config, **item.shows(checked)}
    return audited


# -- mute and delete ---------------------------------------------------------------------


async def mute_channel(
    ctx: Context, channel_id: str, until: datetime | None
) -> tuple[ChannelRow | None, list[Problem]]:
    try:
        async with ctx.db.write() as session:
            row = await session.get(ChannelRow, channel_id, with_for_update=True)
            if row is None:
                raise ProblemError([not_found("channel")])
            before = _instant(row.muted_until)
            row.muted_until = until
            row.updated_at = utcnow()
            record_audit(
                session,
                actor=ctx.principal.name,
                action="channel.mute" if until else "channel.unmute",
                target=row.id,
                details={
                    "kind": row.kind,
                    "name": row.name,
                    "until": _instant(until),
                    "changes": {"muted_until": routing_change(before, _instant(until))},
                },
            )
    except ProblemError as exc:
        return None, exc.problems
    return row, []


def _instant(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


async def delete_channel(ctx: Context, channel_id: str) -> tuple[str | None, list[Problem]]:
    try:
        async with ctx.db.write() as session:
            row = await session.get(ChannelRow, channel_id, with_for_update=True)
            if row is None:
                raise ProblemError([not_found("channel")])
            await session.delete(row)
            record_audit(
                session,
                actor=ctx.principal.name,
                action="channel.delete",
                target=channel_id,
                details={"kind": row.kind, "name": row.name},
            )
    except ProblemError as exc:
        return None, exc.problems
    return channel_id, []
