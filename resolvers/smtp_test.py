"""testSmtpConnection: connect, negotiate TLS and log in to an e-mail channel's SMTP server,
as saved or as being edited, then quit. No mail is sent; every test is audited.

With a channel id, the stored values (the password decrypted here, server-side) fill in
whatever the input leaves out, so an unsaved edit is tested with the saved password. The
input is checked as a save checks it (host, egress policy, plain-text login); what fails
those checks is not connected to.
"""

from __future__ import annotations

import copy
from typing import Any

from tocsin.channels.base import CheckContext, Destination, Kind
from tocsin.channels.email import ConnectionCheck, EmailSender, check_connection
from tocsin.channels.rendering import secret_fragments, short_error
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Context
from tocsin.resolvers.problems import Problem, Problems, not_found
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.enums import EmailProvider
from tocsin.storage.redaction import secret_registry
from tocsin.storage.tables import ChannelRow

SPEC: Kind = EmailSender()
SMTP_KEYS = ("smtp_host", "smtp_port", "security", "username", "verify_tls")
TESTED = {*SMTP_KEYS, "password"}
"What the test uses; the rest of a form sent along (recipients, SendGrid) is not checked."


async def run_smtp_test(
    ctx: Context, channel_id: str | None, changes: dict[str, Any]
) -> tuple[ConnectionCheck, list[Problem]]:
    """The check's outcome, and the input's problems (then nothing was connected to)."""
    problems = Problems()
    changes = {key: value for key, value in changes.items() if key in TESTED}
    row = await _stored(ctx, channel_id, problems)
    destination = _merged(ctx, row, changes, problems) if not problems else None
    if destination is None or problems:
        first = problems.items[0].message if problems else "Nothing to test."
        outcome = ConnectionCheck(ok=False, latency_ms=0.0, stage="CONNECT", error=first)
    else:
        context = ctx.services.send_context
        if context is None:
            raise RuntimeError("testSmtpConnection needs services opened with HTTP")
        outcome = await check_connection(destination, context)
    await _audit(ctx, channel_id, destination, changes, outcome, problems.items)
    return outcome, problems.items


async def _stored(ctx: Context, channel_id: str | None, problems: Problems) -> ChannelRow | None:
    if channel_id is None:
        return None
    async with ctx.db.read() as session:
        row = await session.get(ChannelRow, channel_id)
    if row is None or row.kind != SPEC.kind:
        problems.items.append(not_found(f"{SPEC.label} channel"))
        return None
    return row


def _merged(
    ctx: Context, row: ChannelRow | None, changes: dict[str, Any], problems: Problems
) -> Destination | None:
    """The channel as the input edits it, each given field checked as a save checks it."""
    config = dict(row.config) if row is not None else SPEC.config_defaults()
    secrets = dict(decrypt_secrets(ctx.box, row)) if row is not None else {}
    allowed = ctx.settings.allowed_private_networks
    for item in SPEC.fields:
        if item.stored_as not in changes:
            continue
        value = changes[item.stored_as]
        if isinstance(value, str) and item.strip:
            value = value.strip() or None
        if value is None:
            if item.private:
                secrets.pop(item.stored_as, None)
            else:
                config[item.stored_as] = copy.copy(item.default)
            continue
        if value == "" and item.private:
            problems.add(item.input, "REQUIRED", "Enter a value, or send null to clear it.")
            continue
        context = CheckContext(allowed, stored=secrets.get(item.stored_as))
        checked = item.check(problems, item.input, value, context) if item.check else value
        (secrets if item.private else config)[item.stored_as] = checked
    secret_registry.add_secrets(secrets)  # a password typed into the form: never logged
    if not config.get("smtp_host"):
        problems.add("smtpHost", "REQUIRED", "Enter the SMTP host to test.")
    # The SMTP fields are tested whatever the provider: judge the login as SMTP would send it.
    SPEC.check_channel(
        problems,
        {**config, "provider": EmailProvider.SMTP.value},
        [key for key, value in secrets.items() if value],
        changed={*changes, "smtp_host"},
        allowed_networks=allowed,
    )
    return Destination(
        channel_id=row.id if row is not None else "smtp_test",
        kind=SPEC.kind,
        name=row.name if row is not None else SPEC.label,
        config=config,
        secrets=secrets,
    )


async def _audit(
    ctx: Context,
    channel_id: str | None,
    destination: Destination | None,
    changes: dict[str, Any],
    outcome: ConnectionCheck,
    problems: list[Problem],
) -> None:
    """Who tested what, and how it went; of the password only whether one was used."""
    config = destination.config if destination is not None else {}
    fragments = secret_fragments(destination.secrets) if destination is not None else []
    details: dict[str, Any] = {key: config.get(key) for key in SMTP_KEYS}
    details.update(
        password="set" if destination is not None and destination.secrets.get("password") else None,
        edited=sorted(changes),
        ok=outcome.ok,
        stage=outcome.stage,
        error=short_error(outcome.error, fragments) if outcome.error else None,
        problems=[problem.code for problem in problems],
    )
    async with ctx.db.write() as session:
        record_audit(
            session,
            actor=ctx.principal.name,
            action="channel.smtp_test",
            target=channel_id,
            details=details,
        )
