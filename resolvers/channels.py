"""Channels: create, update, mute, delete and read. Secrets are encrypted before storage
and never returned; a saved channel exposes only which secrets are set, and URL hints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tocsin.resolvers import validation as check
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, ProblemError, Problems, not_found
from tocsin.storage.enums import ChannelKind, DeliveryMode, Priority, SmtpSecurity
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow, EventTypeRow
from tocsin.storage.types import utcnow

COMMON_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "event_types": None,
    "min_priority": Priority.INFO.value,
    "metadata_match": None,
    "mode": DeliveryMode.REALTIME.value,
    "max_retries": 3,
}


@dataclass(frozen=True)
class KindSpec:
    """What a kind stores: which input fields are secret, which are plain config."""

    kind: ChannelKind
    label: str
    secrets: tuple[str, ...]
    url_secrets: tuple[str, ...]
    config_defaults: dict[str, Any] = field(default_factory=dict)
    configured: Callable[[dict[str, Any], set[str]], bool] = lambda config, secrets: False


SPECS: dict[ChannelKind, KindSpec] = {
    ChannelKind.SLACK: KindSpec(
        ChannelKind.SLACK,
        "Slack",
        secrets=("webhook_url",),
        url_secrets=("webhook_url",),
        configured=lambda config, secrets: "webhook_url" in secrets,
    ),
    ChannelKind.WEBHOOK: KindSpec(
        ChannelKind.WEBHOOK,
        "Webhook",
        secrets=("url", "signing_secret", "headers"),
        url_secrets=("url",),
        config_defaults={"header_names": []},
        configured=lambda config, secrets: "url" in secrets,
    ),
    ChannelKind.EMAIL: KindSpec(
        ChannelKind.EMAIL,
        "Email",
        secrets=("password",),
        url_secrets=(),
        config_defaults={
            "to": [],
            "smtp_host": None,
            "smtp_port": 587,
            "security": SmtpSecurity.STARTTLS.value,
            "username": None,
            "from_address": None,
            "from_name": None,
            "verify_tls": True,
        },
        configured=lambda config, secrets: bool(config.get("to")) and bool(config.get("smtp_host")),
    ),
    ChannelKind.DISCORD: KindSpec(
        ChannelKind.DISCORD,
        "Discord",
        secrets=("webhook_url",),
        url_secrets=("webhook_url",),
        configured=lambda config, secrets: "webhook_url" in secrets,
    ),
    ChannelKind.TELEGRAM: KindSpec(
        ChannelKind.TELEGRAM,
        "Telegram",
        secrets=("bot_token",),
        url_secrets=(),
        config_defaults={"chat_id": None},
        configured=lambda config, secrets: "bot_token" in secrets and bool(config.get("chat_id")),
    ),
}


def is_configured(row: ChannelRow) -> bool:
    spec = SPECS[ChannelKind(row.kind)]
    return spec.configured(row.config, set(row.secrets_set))


def url_hint(url: str) -> str:
    """scheme://host/…/last4 — enough to recognise a URL, not enough to use it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    return f"{parts.scheme}://{host}/…/{url[-4:]}"


def decrypt_secrets(box: SecretBox, row: ChannelRow) -> dict[str, Any]:
    return box.decrypt(row.secrets_ciphertext) if row.secrets_ciphertext else {}


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
    ctx: Context, kind: ChannelKind, channel_id: str | None, changes: dict[str, Any]
) -> tuple[ChannelRow | None, list[Problem]]:
    """Apply ``changes`` (present input fields only; None means null) in one transaction.

    Nothing is stored when any problem is found.
    """
    spec = SPECS[kind]
    try:
        async with ctx.db.write() as session:
            row = await _load_or_new(session, spec, channel_id)
            creating = channel_id is None
            problems = Problems()
            audit_changes: dict[str, Any] = {}
            known_types = await _event_type_names(session) if "event_types" in changes else set()
            _apply_common(row, spec, changes, problems, audit_changes, known_types, creating)
            _apply_config(ctx, row, spec, changes, problems, audit_changes)
            _apply_secrets(ctx, row, spec, changes, problems, audit_changes)
            if kind is ChannelKind.EMAIL:
                check.check_plaintext_login(
                    problems,
                    row.config,
                    password_set="password" in row.secrets_set,
                    changed=changes.keys(),
                    allowed=ctx.settings.allowed_private_networks,
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
                details={"kind": kind.value, "name": row.name, "changes": audit_changes},
            )
    except ProblemError as exc:
        return None, exc.problems
    return row, []


async def _load_or_new(session: AsyncSession, spec: KindSpec, channel_id: str | None) -> ChannelRow:
    if channel_id is None:
        now = utcnow()
        return ChannelRow(
            kind=spec.kind.value,
            name=spec.label,
            config=dict(spec.config_defaults),
            created_at=now,
            updated_at=now,
            **COMMON_DEFAULTS,
        )
    # FOR UPDATE: a concurrent save or key rotation would otherwise overwrite this one
    row = await session.get(ChannelRow, channel_id, with_for_update=True)
    if row is None or row.kind != spec.kind.value:
        raise ProblemError([not_found(f"{spec.label} channel")])
    return row


async def _event_type_names(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(col(EventTypeRow.name)))).all())


def _apply_common(
    row: ChannelRow,
    spec: KindSpec,
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
            setattr(row, key, value)
            audit[key] = value
    if "event_types" in changes:
        names = changes["event_types"]
        if names is not None:
            check.check_event_types(problems, "eventTypes", names, known_types)
            names = sorted(set(names))
        row.event_types = names
        audit["event_types"] = names
    if "metadata_match" in changes:
        value = changes["metadata_match"]
        if value is not None:
            value = check.check_metadata_match(problems, "metadataMatch", value)
        row.metadata_match = value
        audit["metadata_match"] = value


_CONFIG_INPUTS = {
    "to": "to",
    "smtp_host": "smtpHost",
    "smtp_port": "smtpPort",
    "security": "security",
    "username": "username",
    "from_address": "fromAddress",
    "from_name": "fromName",
    "verify_tls": "verifyTls",
    "chat_id": "chatId",
}


def _apply_config(
    ctx: Context,
    row: ChannelRow,
    spec: KindSpec,
    changes: dict[str, Any],
    problems: Problems,
    audit: dict[str, Any],
) -> None:
    config = dict(row.config)
    allowed = ctx.settings.allowed_private_networks
    for key, path in _CONFIG_INPUTS.items():
        if key not in changes or key not in spec.config_defaults:
            continue
        value = changes[key]
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            value = spec.config_defaults[key]
        elif key == "to":
            value = check.check_recipients(problems, path, value)
        elif key == "smtp_host":
            check.check_smtp_host(problems, path, value, allowed)
        elif key == "smtp_port":
            check.check_port(problems, path, value)
        elif key == "from_address":
            value = check.check_email(problems, path, value)
        elif key in {"username", "from_name"}:
            if len(value) > 320 or any(c in value for c in "\r\n\0"):
                problems.add(path, "INVALID_VALUE", "Use one line of at most 320 characters.")
        elif key == "chat_id":
            check.check_chat_id(problems, path, value)
        config[key] = value
        audit[key] = value
    row.config = config


_SECRET_INPUTS = {
    "webhook_url": "webhookUrl",
    "url": "url",
    "signing_secret": "signingSecret",
    "headers": "headers",
    "password": "password",
    "bot_token": "botToken",
}


def _apply_secrets(
    ctx: Context,
    row: ChannelRow,
    spec: KindSpec,
    changes: dict[str, Any],
    problems: Problems,
    audit: dict[str, Any],
) -> None:
    present = [key for key in spec.secrets if key in changes]
    if not present:
        return
    secrets = decrypt_secrets(ctx.box, row)
    hints = dict(row.hints)
    allowed = ctx.settings.allowed_private_networks
    for key in present:
        path = _SECRET_INPUTS[key]
        value = changes[key]
        if value is None:
            secrets.pop(key, None)
            hints.pop(key, None)
            if key == "headers":
                row.config = {**row.config, "header_names": []}
            audit[key] = "cleared"
            continue
        if key == "headers":
            headers = check.check_headers(problems, path, value, secrets.get("headers", {}))
            if headers is not None:
                secrets["headers"] = headers
                row.config = {**row.config, "header_names": sorted(headers)}
            audit[key] = {
                "names": sorted(value) if isinstance(value, dict) else [],
                "values": "set",
            }
            continue
        if key != "password":
            value = value.strip()
        if not value:
            problems.add(path, "REQUIRED", "Enter a value, or send null to clear it.")
            continue
        if key in spec.url_secrets:
            check.check_url(problems, path, value, allowed)
            hints[key] = url_hint(value)
        elif key == "signing_secret":
            check.check_signing_secret(problems, path, value)
        elif key == "bot_token":
            check.check_bot_token(problems, path, value)
        elif len(value) > 1024:
            problems.add(path, "TOO_LONG", "Use at most 1024 characters.")
        secrets[key] = value
        audit[key] = "set"
    if problems:
        return
    row.secrets_ciphertext = ctx.box.encrypt(secrets) if secrets else None
    row.secrets_set = sorted(k for k, v in secrets.items() if v)
    row.hints = hints


# -- mute and delete ---------------------------------------------------------------------


async def mute_channel(
    ctx: Context, channel_id: str, until: datetime | None
) -> tuple[ChannelRow | None, list[Problem]]:
    try:
        async with ctx.db.write() as session:
            row = await session.get(ChannelRow, channel_id, with_for_update=True)
            if row is None:
                raise ProblemError([not_found("channel")])
            row.muted_until = until
            row.updated_at = utcnow()
            record_audit(
                session,
                actor=ctx.principal.name,
                action="channel.mute" if until else "channel.unmute",
                target=row.id,
                details={"kind": row.kind, "name": row.name, "until": until and until.isoformat()},
            )
    except ProblemError as exc:
        return None, exc.problems
    return row, []


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
