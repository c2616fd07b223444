"""Email over SMTP (aiosmtplib): a text and an HTML part, to every address of the channel.

Or, with ``provider`` SENDGRID, the same subject and parts through SendGrid's Mail Send API
(``channels/sendgrid.py``); the SMTP fields are kept, unused, for a switch back.

The SMTP host is a destination like any URL: it is resolved here, every address
is checked by the egress guard, and the connection goes to a checked address
while TLS still verifies the certificate against the host name. ``STARTTLS``
means STARTTLS or nothing, ``TLS`` is implicit TLS, ``NONE`` is plain text
with no opportunistic upgrade.
"""

from __future__ import annotations

import asyncio
import functools
import html
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from tocsin.channels import egress, fields, sendgrid
from tocsin.channels.base import (
    Destination,
    Digest,
    Field,
    Kind,
    Message,
    ProblemSink,
    SendContext,
    SendResult,
)
from tocsin.channels.digest_layout import (
    PartInfo,
    event_about,
    event_detail,
    event_title,
    period_text,
    title_text,
)
from tocsin.channels.rendering import (
    exception_chain,
    headline,
    human_time,
    metadata_items,
    secret_fragments,
    short_error,
    single_line,
    truncate,
)
from tocsin.settings import IPNetwork
from tocsin.sockets import tcp_socket
from tocsin.storage.enums import EmailProvider

SECURITY_MODES = ("STARTTLS", "TLS", "NONE")
DEFAULT_PORTS = {"STARTTLS": 587, "TLS": 465, "NONE": 25}
SUBJECT_LIMIT = 250
_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]\\@]+@[^\s<>,;:\"()\[\]\\@]+")


class SmtpRefusal(Exception):
    """Tocsin itself stopped the conversation; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    sender_name: str | None
    recipients: tuple[str, ...]
    verify_tls: bool

    @classmethod
    def for_connection(cls, destination: Destination) -> SmtpSettings:
        """What connecting and logging in need (no sender, no recipients); raises ValueError
        with a message for the user."""
        config, secrets = destination.config, destination.secrets
        host = str(config.get("smtp_host") or "").strip()
        if not host:
            raise ValueError("SMTP host is not set")
        security = str(config.get("security") or "STARTTLS").upper()
        if security not in SECURITY_MODES:
            raise ValueError(f"SMTP security must be one of {', '.join(SECURITY_MODES)}")
        return cls(
            host=host,
            port=int(config.get("smtp_port") or DEFAULT_PORTS[security]),
            security=security,
            username=config.get("username") or None,
            password=secrets.get("password") or None,
            sender="",
            sender_name=None,
            recipients=(),
            verify_tls=bool(config.get("verify_tls", True)),
        )

    @classmethod
    def from_destination(cls, destination: Destination) -> SmtpSettings:
        """Read and check the channel; raises ValueError with a message for the user."""
        connection = cls.for_connection(destination)
        config = destination.config
        to = config.get("to") or ()
        to = [to] if isinstance(to, str) else to
        recipients = tuple(str(a).strip() for a in to if str(a).strip())
        if not recipients:
            raise ValueError("no recipient address (Email To) is set")
        sender = str(config.get("from_address") or connection.username or "").strip()
        if not _ADDRESS.fullmatch(sender):
            raise ValueError("no valid sender address: set From Address")
        for address in recipients:
            if not _ADDRESS.fullmatch(address):
                raise ValueError(f"recipient address {truncate(address, 80)!r} is not valid")
        return replace(
            connection,
            sender=sender,
            sender_name=config.get("from_name") or None,
            recipients=recipients,
        )


@dataclass(frozen=True, slots=True)
class Letter:
    """What one mail says, before it is addressed: the same for SMTP and SendGrid."""

    delivery_id: str
    "Its Message-ID's local part, the same on every retry."
    subject: str
    text: str
    html: str


def letter_for(message: Message, prefix: str) -> Letter:
    """One event's mail."""
    return Letter(
        message.delivery_id,
        email_subject(message, prefix),
        email_text(message),
        email_html(message),
    )


def build_email(settings: SmtpSettings, message: Message, prefix: str) -> EmailMessage:
    """The message with headers that no title, name or metadata can add to."""
    return address_letter(settings, letter_for(message, prefix))


def address_letter(settings: SmtpSettings, letter: Letter) -> EmailMessage:
    """``letter`` as a MIME message from the channel's sender to its recipients."""
    mail = EmailMessage()
    mail["Subject"] = letter.subject
    mail["From"] = Address(
        display_name=single_line(settings.sender_name or ""), addr_spec=settings.sender
    )
    mail["To"] = [Address(addr_spec=address) for address in settings.recipients]
    mail["Date"] = formatdate(usegmt=True)
    domain = settings.sender.rpartition("@")[2]
    mail["Message-ID"] = f"<tocsin.{re.sub(r'[^A-Za-z0-9._-]', '-', letter.delivery_id)}@{domain}>"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(letter.text, cte="quoted-printable")
    mail.add_alternative(letter.html, subtype="html", cte="quoted-printable")
    return mail


def email_subject(message: Message, prefix: str) -> str:
    return truncate(single_line(headline(prefix, message.title)), SUBJECT_LIMIT)


def email_provider(config: Mapping[str, Any]) -> EmailProvider:
    """The channel's provider; a channel saved before providers existed sends over SMTP."""
    try:
        return EmailProvider(config.get("provider") or EmailProvider.SMTP)
    except ValueError:
        return EmailProvider.SMTP


def sendgrid_mail(destination: Destination, message: Message, prefix: str) -> sendgrid.Mail:
    """The mail as SendGrid takes it; ValueError (a message for the user) when the channel
    can't send one."""
    return sendgrid_letter(destination, letter_for(message, prefix))


def sendgrid_letter(destination: Destination, letter: Letter) -> sendgrid.Mail:
    """``letter`` as SendGrid takes it; ValueError (a message for the user) when the channel
    can't send one."""
    config = destination.config
    to = config.get("to") or ()
    to = [to] if isinstance(to, str) else to
    recipients = tuple(str(a).strip() for a in to if str(a).strip())
    if not recipients:
        raise ValueError("no recipient address (Email To) is set")
    sender = str(config.get("from_address") or "").strip()
    if not _ADDRESS.fullmatch(sender):
        raise ValueError("no valid sender address: set From Address")
    for address in recipients:
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"recipient address {truncate(address, 80)!r} is not valid")
    return sendgrid.Mail(
        recipients=recipients,
        sender=sender,
        sender_name=single_line(config.get("from_name") or "") or None,
        subject=letter.subject,
        text=letter.text,
        html=letter.html,
    )


def email_text(message: Message) -> str:
    lines = [message.title, ""]
    if message.detail:
        lines += [message.detail, ""]
    items = metadata_items(message.metadata)
    if items:
        lines += [f"{key}: {value}" for key, value in items] + [""]
    lines.append(_about(message))
    return "\n".join(lines) + "\n"


def email_html(message: Message) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: sans-serif; color: #222;">',
        f'<h2 style="margin: 0 0 12px;">{esc(message.title)}</h2>',
    ]
    if message.detail:
        parts.append(f'<p style="white-space: pre-wrap;">{esc(message.detail)}</p>')
    items = metadata_items(message.metadata)
    if items:
        parts.append('<table cellpadding="4" style="border-collapse: collapse;">')
        parts += [
            f'<tr><th align="left">{esc(key)}</th><td>{esc(value)}</td></tr>'
            for key, value in items
        ]
        parts.append("</table>")
    parts.append(f'<p style="color: #666; font-size: 12px;">{esc(_about(message))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# Digests: one mail, the events as a list in text and a table in HTML.

DIGEST_TITLE_LIMIT = 500
DIGEST_DETAIL_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class _Row:
    message: Message
    title: str
    detail: str
    shortened: bool


def _row(message: Message) -> _Row:
    title, title_cut = event_title(message, DIGEST_TITLE_LIMIT)
    detail, detail_cut = event_detail(message, DIGEST_DETAIL_LIMIT)
    return _Row(message, title, detail, title_cut or detail_cut)


def digest_letter(digest: Digest, prefix: str) -> Letter:
    """``"[Tocsin] Digest: 3 events (MEDIUM)"``, every event in order, in text and HTML."""
    rows = [_row(message) for message in digest.messages]
    total = len(rows)
    part = PartInfo(1, 1, 0, total, total, shortened=any(row.shortened for row in rows))
    noun = "event" if total == 1 else "events"
    subject = headline(prefix, f"Digest: {total} {noun} ({digest.priority})")
    head = (title_text(prefix, digest, part), period_text(digest, part))
    return Letter(
        digest.delivery_id,
        truncate(single_line(subject), SUBJECT_LIMIT),
        _digest_text(head, rows),
        _digest_html(head, rows),
    )


def _digest_text(head: tuple[str, str], rows: list[_Row]) -> str:
    lines = [*head, ""]
    for number, row in enumerate(rows, start=1):
        lines += [f"{number}. {row.title}", f"   {event_about(row.message)}"]
        lines += [f"   {line}" for line in row.detail.splitlines()] + [""]
    return "\n".join(lines)


def _digest_html(head: tuple[str, str], rows: list[_Row]) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    cells = "".join(
        f'<th align="left">{name}</th>' for name in ("Time", "Priority", "Type", "Event")
    )
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: sans-serif; color: #222;">',
        f'<h2 style="margin: 0 0 12px;">{esc(head[0])}</h2>',
        f'<p style="color: #666;">{esc(head[1])}</p>',
        '<table cellpadding="4" style="border-collapse: collapse;">',
        f"<tr>{cells}</tr>",
    ]
    for row in rows:
        message = row.message
        event = f"<strong>{esc(row.title)}</strong>"
        if row.detail:
            event += f'<div style="white-space: pre-wrap;">{esc(row.detail)}</div>'
        parts.append(
            f"<tr><td>{esc(human_time(message.occurred_at))}</td><td>{esc(message.priority)}</td>"
            f"<td>{esc(message.event_type)}</td><td>{event}</td></tr>"
        )
    parts += ["</table>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _about(message: Message) -> str:
    return (
        f"Priority: {message.priority} · Event: {message.event_type}"
        f" · {human_time(message.occurred_at)}"
    )


class EmailSender(Kind):
    kind = "EMAIL"
    label = "Email"
    fields = (
        Field("to", "to", default=[], check=fields.recipients),
        Field("smtpHost", "smtp_host", check=fields.smtp_host),
        Field("smtpPort", "smtp_port", default=587, check=fields.port),
        Field("security", "security", default="STARTTLS"),
        Field("username", "username", check=fields.one_line),
        Field("password", "password", private=True, strip=False, check=fields.at_most_1024),
        Field("fromAddress", "from_address", check=fields.email_address),
        Field("fromName", "from_name", check=fields.one_line),
        Field("verifyTls", "verify_tls", default=True),
        Field("provider", "provider", default=EmailProvider.SMTP.value),
        Field("sendgridApiKey", sendgrid.KEY_STORED_AS, private=True, check=sendgrid.check_api_key),
    )
    required = ("to", "smtp_host")
    "With SMTP; SendGrid needs ``to``, its API key and ``from_address``."

    def is_configured(self, config: Mapping[str, Any], secrets_set: Collection[str]) -> bool:
        if email_provider(config) is not EmailProvider.SENDGRID:
            return super().is_configured(config, secrets_set)
        has_key = sendgrid.KEY_STORED_AS in secrets_set
        return has_key and bool(config.get("to")) and bool(config.get("from_address"))

    def check_channel(
        self,
        problems: ProblemSink,
        config: Mapping[str, Any],
        secrets_set: Collection[str],
        *,
        changed: Collection[str],
        allowed_networks: Sequence[IPNetwork],
    ) -> None:
        if email_provider(config) is EmailProvider.SENDGRID:
            return  # nothing goes to the SMTP server, in clear text or otherwise
        if "provider" in changed:  # back to SMTP: its login is judged as if set just now
            changed = {*changed, "security"}
        fields.check_plaintext_login(
            problems,
            config,
            password_set="password" in secrets_set,
            changed=changed,
            allowed=allowed_networks,
        )

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        """The mail; ValueError (a message for the user) when the channel can't send one."""
        return _addressed(destination, letter_for(message, context.message_prefix))

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """One mail: a table in HTML, a list in text (a mail has room for every event)."""
        return [_addressed(destination, digest_letter(digest, context.message_prefix))]

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        try:
            rendered = self.render(destination, message, context)
        except ValueError as exc:
            fragments = sendgrid.key_fragments(destination.secrets)
            return SendResult(ok=False, latency_ms=0.0, error=short_error(str(exc), fragments))
        return await self.send_rendered(destination, rendered, context)

    async def send_rendered(
        self, destination: Destination, rendered: Any, context: SendContext
    ) -> SendResult:
        """A MIME message over SMTP; a v3 body (provider SENDGRID) through SendGrid."""
        if isinstance(rendered, EmailMessage):
            return await _send_over_smtp(destination, rendered, context)
        return await sendgrid.send_body(context, destination, rendered)


def _addressed(destination: Destination, letter: Letter) -> Any:
    """``letter`` as the channel's provider sends it; ValueError (a message for the user)
    when the channel can't send one."""
    try:
        if email_provider(destination.config) is EmailProvider.SENDGRID:
            return sendgrid.mail_send_body(sendgrid_letter(destination, letter))
        return address_letter(SmtpSettings.from_destination(destination), letter)
    except (TypeError, HeaderParseError) as exc:
        raise ValueError(str(exc)) from exc


async def _send_over_smtp(
    destination: Destination, mail: EmailMessage, context: SendContext
) -> SendResult:
    fragments = secret_fragments(destination.secrets)
    try:
        settings = SmtpSettings.from_destination(destination)
    except (ValueError, TypeError) as exc:
        return SendResult(ok=False, latency_ms=0.0, error=short_error(str(exc), fragments))
    started = time.perf_counter()
    progress = _Progress()
    try:
        async with asyncio.timeout(context.timeout):
            await _deliver(settings, mail, context, progress)
    except (aiosmtplib.SMTPException, OSError, SmtpRefusal) as exc:
        if progress.accepted_code is None:
            error, retryable, code = describe_smtp_failure(exc, settings, context.timeout)
            return SendResult(
                ok=False,
                latency_ms=_since(started),
                status_code=code,
                error=short_error(error, fragments),
                retryable=retryable,
            )
        # The server took the message; only the goodbye failed.
    if progress.refused:
        error, code = describe_partial_refusal(progress.refused, len(settings.recipients))
        # Not retryable: a retry sends the whole message again, so every recipient the
        # server accepted would get it once more per attempt.
        return SendResult(
            ok=False,
            latency_ms=_since(started),
            status_code=code,
            error=short_error(error, fragments),
        )
    return SendResult(ok=True, latency_ms=_since(started), status_code=progress.accepted_code)


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """What ``check_connection`` found. ``stage`` names the step that failed (CONNECT, TLS
    or AUTH; None when ok) and ``error`` says it as a failed send would, free of secrets."""

    ok: bool
    latency_ms: float
    stage: str | None = None
    error: str | None = None
    status_code: int | None = None


async def check_connection(destination: Destination, context: SendContext) -> ConnectionCheck:
    """Connect, negotiate TLS and log in exactly as a send would, then QUIT: no mail is sent.
    ``context.timeout`` bounds the whole check."""
    fragments = secret_fragments(destination.secrets)
    try:
        settings = SmtpSettings.for_connection(destination)
    except (ValueError, TypeError) as exc:
        error = short_error(str(exc), fragments)
        return ConnectionCheck(ok=False, latency_ms=0.0, stage="CONNECT", error=error)
    started = time.perf_counter()
    progress = _Progress()
    ready = False
    try:
        async with asyncio.timeout(context.timeout):
            async with smtp_session(settings, context, progress) as smtp:
                ready = True
                await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, SmtpRefusal) as exc:
        if not ready:  # once logged in, only the goodbye failed: the connection is good
            error, _, code = describe_smtp_failure(exc, settings, context.timeout)
            return ConnectionCheck(
                ok=False,
                latency_ms=_since(started),
                stage=_failed_stage(exc, progress),
                error=short_error(error, fragments),
                status_code=code,
            )
    return ConnectionCheck(ok=True, latency_ms=_since(started))


def _failed_stage(exc: BaseException, progress: _Progress) -> str:
    """A TLS failure is TLS even inside CONNECT (implicit TLS shakes hands on connect)."""
    if any(isinstance(cause, ssl.SSLError) for cause in exception_chain(exc)):
        return "TLS"
    return progress.stage or "CONNECT"


@dataclass(slots=True)
class _Progress:
    accepted_code: int | None = None
    refused: dict[str, aiosmtplib.SMTPResponse] = field(default_factory=dict)
    "Recipients the server refused while it accepted the others (and the message)."
    stage: str | None = None
    "The step of the conversation under way: CONNECT, TLS or AUTH; None once logged in."


def describe_partial_refusal(
    refused: dict[str, aiosmtplib.SMTPResponse], total: int
) -> tuple[str, int]:
    """ "SMTP server refused 1 of 2 recipients (…); the other 1 received the message", and
    the first refusal's code."""
    replies = "; ".join(
        f"{truncate(address, 80)}: {reply.code} {truncate(single_line(reply.message), 80)}"
        for address, reply in list(refused.items())[:3]
    )
    more = f"; and {len(refused) - 3} more" if len(refused) > 3 else ""
    accepted = total - len(refused)
    error = (
        f"SMTP server refused {len(refused)} of {total} recipients ({replies}{more}); "
        f"the other {accepted} received the message"
    )
    return error, next(iter(refused.values())).code


async def _deliver(
    settings: SmtpSettings, mail: EmailMessage, context: SendContext, progress: _Progress
) -> None:
    async with smtp_session(settings, context, progress) as smtp:
        refused, _ = await smtp.send_message(
            mail, sender=settings.sender, recipients=list(settings.recipients)
        )
        progress.refused = dict(refused)
        progress.accepted_code = int(aiosmtplib.SMTPStatus.completed)  # 250: DATA accepted
        await smtp.quit()


@asynccontextmanager
async def smtp_session(
    settings: SmtpSettings, context: SendContext, progress: _Progress
) -> AsyncIterator[aiosmtplib.SMTP]:
    """A connection to a checked address of the host, with TLS as ``security`` says and
    logged in when a username and password are set; ``progress.stage`` names the step under
    way. Closed on exit. The caller's ``asyncio.timeout`` bounds it."""
    progress.stage = "CONNECT"
    targets = await resolve_smtp_host(settings.host, settings.port, context.allowed_networks)
    sock = await _open_socket(targets)
    try:
        _refuse_plaintext_login(settings, sock, context.allowed_networks)
    except SmtpRefusal:
        sock.close()
        raise
    smtp = aiosmtplib.SMTP(
        hostname=settings.host,  # what TLS verifies the certificate against
        sock=sock,
        use_tls=settings.security == "TLS",
        start_tls=False,  # never upgrade on our own; STARTTLS is done explicitly below
        tls_context=_tls_context(settings.verify_tls, context.ssl_context),
        local_hostname=await _local_hostname(),
        timeout=None,  # the caller's asyncio.timeout bounds the whole attempt
    )
    try:
        await smtp.connect()
        await _negotiate(smtp, settings, progress)
        progress.stage = None
        yield smtp
    finally:
        smtp.close()


async def _negotiate(smtp: aiosmtplib.SMTP, settings: SmtpSettings, progress: _Progress) -> None:
    """STARTTLS when the channel says so (or nothing: no downgrade), then the login."""
    if settings.security == "STARTTLS":
        progress.stage = "TLS"
        await smtp.ehlo()
        if not smtp.supports_extension("starttls"):
            raise SmtpRefusal(f"SMTP server {settings.host} does not offer STARTTLS")
        await smtp.starttls()
    if settings.username and settings.password:
        progress.stage = "AUTH"
        await smtp.ehlo()
        if not smtp.supports_extension("auth"):
            raise SmtpRefusal(f"SMTP server {settings.host} does not offer AUTH")
        await smtp.login(settings.username, settings.password)


def _refuse_plaintext_login(
    settings: SmtpSettings, sock: socket.socket, allowed: Sequence[IPNetwork]
) -> None:
    """No login in clear text except to an address the operator allowed (a local relay).

    Checked on the connected address, before a byte is sent: a name may resolve anywhere.
    Rows saved before the save-time check existed end here too.
    """
    if settings.security != "NONE" or not (settings.username and settings.password):
        return
    peer = ipaddress.ip_address(sock.getpeername()[0])
    if not egress.in_allowed_networks(peer, allowed):
        raise SmtpRefusal(
            f"refusing to send the SMTP login in clear text to {settings.host} ({peer}): "
            "use security STARTTLS or TLS (plain text with a login only goes to "
            "TOCSIN_ALLOWED_PRIVATE_NETWORKS)"
        )


async def resolve_smtp_host(
    host: str, port: int, allowed: Sequence[IPNetwork]
) -> list[tuple[socket.AddressFamily, Any]]:
    """The checked (family, sockaddr) pairs to try; raises DestinationNotAllowed when none is."""
    egress.check_host(host, allowed)
    literal = egress.parse_host(host)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(str(literal) if literal else host, port, type=socket.SOCK_STREAM)
    resolved = [(family, addr, ipaddress.ip_address(addr[0])) for family, *_, addr in infos]
    permitted = set(egress.allowed_resolved(host, [a for *_, a in resolved], allowed))
    return [(family, sockaddr) for family, sockaddr, address in resolved if address in permitted]


async def _open_socket(targets: Sequence[tuple[socket.AddressFamily, Any]]) -> socket.socket:
    loop = asyncio.get_running_loop()
    last_error: OSError = OSError("no address to connect to")
    for family, sockaddr in targets:
        sock = tcp_socket(family)
        connected = False
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
            connected = True
        except OSError as exc:
            last_error = exc
        finally:
            if not connected:
                sock.close()
        if connected:
            return sock
    raise last_error


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls_context(verify: bool, trusted: ssl.SSLContext | None) -> ssl.SSLContext:
    if not verify:
        return _unverified_context()
    return trusted if trusted is not None else _verifying_context()


_fqdn: str | None = None


async def _local_hostname() -> str:
    """This host's name for EHLO, looked up once (the lookup may be slow)."""
    global _fqdn
    if _fqdn is None:
        name = await asyncio.to_thread(socket.getfqdn)
        _fqdn = name if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", name or "") else "localhost"
    return _fqdn


def describe_smtp_failure(
    exc: BaseException, settings: SmtpSettings, timeout: float
) -> tuple[str, bool, int | None]:
    """A short error, whether retrying makes sense, and the SMTP reply code if there was one.

    SMTP 4xx replies are temporary (retryable), 5xx permanent.
    """
    host, where = settings.host, f"{settings.host}:{settings.port}"
    causes = list(exception_chain(exc))

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((c for c in causes if isinstance(c, kinds)), None)

    refusal = found(egress.DestinationNotAllowed, SmtpRefusal)
    if isinstance(refusal, egress.DestinationNotAllowed):
        return refusal.reason, False, None
    if refusal is not None:
        return str(refusal), False, None
    if found(ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed for smtp host {host}", False, None
    if found(ssl.SSLError):
        hint = "does the security setting match the port?"
        return f"TLS handshake with smtp host {where} failed ({hint})", False, None
    recipients = found(aiosmtplib.SMTPRecipientsRefused)
    if isinstance(recipients, aiosmtplib.SMTPRecipientsRefused) and recipients.recipients:
        first = recipients.recipients[0]
        reply = f"{first.code} {single_line(first.message)}"
        return f"SMTP server refused the recipients ({reply})", 400 <= first.code < 500, first.code
    answer = found(aiosmtplib.SMTPResponseException)
    if isinstance(answer, aiosmtplib.SMTPResponseException):
        reply = f"{answer.code} {single_line(answer.message)}"
        temporary = 400 <= answer.code < 500
        if isinstance(answer, aiosmtplib.SMTPAuthenticationError):
            return f"SMTP authentication failed ({reply})", temporary, answer.code
        return f"SMTP server answered {reply}", temporary, answer.code
    if found(TimeoutError):
        return f"timed out after {timeout:g}s", True, None
    if found(socket.gaierror):
        return f"could not resolve smtp host {host}", True, None
    if found(ConnectionRefusedError):
        return f"connection refused by smtp host {where}", True, None
    if found(aiosmtplib.SMTPServerDisconnected):
        return f"SMTP server {where} closed the connection", True, None
    if found(OSError):
        return f"could not connect to smtp host {where}", True, None
    return f"SMTP error talking to {where} ({type(exc).__name__})", True, None


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
