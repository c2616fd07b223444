"""Email: real SMTP servers on loopback (STARTTLS + AUTH, implicit TLS, plain)."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.channels.loopback_names import loopback_name
from tests.peers import SmtpServer, _Recorder, _SocketController
from tocsin.channels import email as email_channel
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.email import EmailSender

LOOPBACK_NAME = loopback_name()


def email_destination(
    make_destination: MakeDestination,
    server: SmtpServer,
    *,
    security: str | None = None,
    password: str | None = None,
    login: bool = True,
    **config: Any,
) -> Destination:
    """A channel for ``server``: its port, mode and user; ``login=False`` stores no password."""
    settings: dict[str, Any] = {
        "to": ["ops@example.com", "oncall@example.com"],
        "smtp_host": "localhost",
        "smtp_port": server.port,
        "security": security or server.mode,
        "username": server.username,
        "from_address": "tocsin@example.com",
        "from_name": "Tocsin Alerts",
        "verify_tls": True,
    }
    settings.update(config)
    secrets = {"password": password or server.password} if login else {}
    return make_destination("EMAIL", config=settings, secrets=secrets)


async def test_arrives_over_starttls_after_auth_with_subject_and_both_parts(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    message = make_message(
        detail="Model <stg_orders> failed & stopped", metadata={"env": "staging"}
    )

    result = await EmailSender().send(
        email_destination(make_destination, smtp_server), message, context
    )

    assert result.ok, result.error
    assert result.status_code == 250
    [mail] = await smtp_server.wait_for_messages(1)
    assert mail.over_tls
    assert mail.authenticated_as == "tocsin"
    assert mail.mail_from == "tocsin@example.com"
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    email = mail.message
    assert email["Subject"] == "[Tocsin] dbt build failed in staging"
    assert email["From"] == "Tocsin Alerts <tocsin@example.com>"
    assert email["To"] == "ops@example.com, oncall@example.com"
    assert email["Message-ID"] == "<tocsin.dlv_01HZX3@example.com>"
    assert "Model <stg_orders> failed & stopped" in mail.text_part
    assert "env: staging" in mail.text_part
    assert "Model &lt;stg_orders&gt; failed &amp; stopped" in mail.html_part
    assert '<th align="left">env</th><td>staging</td>' in mail.html_part


async def test_wrong_password_is_a_clear_final_failure(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(make_destination, smtp_server, password=f"wrong-{CANARY}")

    result = await EmailSender().send(destination, make_message(), context)

    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("SMTP authentication failed (535 ")
    assert result.status_code == 535
    assert not result.retryable
    assert CANARY not in result.error
    assert smtp_server.failed_logins >= 1
    assert smtp_server.messages == []


async def test_untrusted_certificate_fails_clearly_not_slowly(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    system_trust_only = dataclasses.replace(context, ssl_context=ssl.create_default_context())
    started = time.monotonic()

    result = await EmailSender().send(
        email_destination(make_destination, smtp_server), make_message(), system_trust_only
    )

    assert result.error == "TLS certificate verification failed for smtp host localhost"
    assert not result.retryable
    assert time.monotonic() - started < 1.5
    assert smtp_server.messages == []


async def test_verify_tls_off_accepts_an_untrusted_certificate(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    system_trust_only = dataclasses.replace(context, ssl_context=ssl.create_default_context())
    destination = email_destination(make_destination, smtp_server, verify_tls=False)

    result = await EmailSender().send(destination, make_message(), system_trust_only)

    assert result.ok, result.error
    assert len(await smtp_server.wait_for_messages(1)) == 1


async def test_starttls_required_fails_against_a_server_without_it(
    smtp_plain_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(make_destination, smtp_plain_server, security="STARTTLS")

    result = await EmailSender().send(destination, make_message(), context)

    assert result.error == "SMTP server localhost does not offer STARTTLS"
    assert not result.retryable
    assert smtp_plain_server.messages == []


async def test_security_none_never_upgrades_on_its_own(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(make_destination, smtp_server, security="NONE", login=False)

    result = await EmailSender().send(destination, make_message(), context)

    # The server insists on STARTTLS first; a plain channel must not quietly do it.
    assert result.error is not None
    assert result.error.startswith("SMTP server answered 530")
    assert not result.retryable
    assert smtp_server.messages == []


async def test_plain_delivery_without_login(
    smtp_plain_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(make_destination, smtp_plain_server, login=False)

    result = await EmailSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [mail] = await smtp_plain_server.wait_for_messages(1)
    assert (mail.over_tls, mail.authenticated_as) == (False, None)


async def test_implicit_tls_delivers_and_logs_in(
    smtp_tls_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    result = await EmailSender().send(
        email_destination(make_destination, smtp_tls_server), make_message(), context
    )

    assert result.ok, result.error
    [mail] = await smtp_tls_server.wait_for_messages(1)
    assert (mail.over_tls, mail.authenticated_as) == (True, "tocsin")


async def test_no_login_unless_both_username_and_password_are_set(
    smtp_tls_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(make_destination, smtp_tls_server, login=False)

    result = await EmailSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [mail] = await smtp_tls_server.wait_for_messages(1)
    assert mail.authenticated_as is None
    assert smtp_tls_server.failed_logins == 0


async def test_header_injection_adds_no_header(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    message = make_message(
        title="Disk full\r\nBcc: victim@example.net\r\nX-Injected: title",
        metadata={"host\r\nX-Injected": "meta\r\nX-Injected: value"},
    )
    destination = email_destination(
        make_destination, smtp_server, from_name="Tocsin\r\nX-Injected: name"
    )

    result = await EmailSender().send(destination, message, context)

    assert result.ok, result.error
    [mail] = await smtp_server.wait_for_messages(1)
    email = mail.message
    assert email["Subject"] == "[Tocsin] Disk full Bcc: victim@example.net X-Injected: title"
    assert email["Bcc"] is None
    assert email["X-Injected"] is None
    assert all(part["X-Injected"] is None for part in email.walk())
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com"]


async def test_temporary_rejection_is_retryable_and_permanent_is_not(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    busy = email_destination(make_destination, smtp_server, to=["tempfail@example.com"])
    unknown = email_destination(make_destination, smtp_server, to=["reject@example.com"])

    temporary = await EmailSender().send(busy, make_message(), context)
    permanent = await EmailSender().send(unknown, make_message(), context)

    assert temporary.error is not None
    assert temporary.error.startswith("SMTP server refused the recipients (451 ")
    assert (temporary.retryable, temporary.status_code) == (True, 451)
    assert permanent.error is not None
    assert permanent.error.startswith("SMTP server refused the recipients (550 ")
    assert (permanent.retryable, permanent.status_code) == (False, 550)


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("localhost", "localhost is always this host, a loopback address"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("2130706433", "2130706433 is 127.0.0.1, a loopback address"),
        ("0x7f.1", "0x7f.1 is 127.0.0.1, a loopback address"),
        (
            "::ffff:7f00:1",
            "::ffff:7f00:1 is an IPv4-mapped address of 127.0.0.1, a loopback address",
        ),
        ("2002:7f00:1::", "2002:7f00:1:: is a 6to4 address of 127.0.0.1, a loopback address"),
    ],
)
async def test_the_smtp_host_is_checked_like_any_destination(
    host: str,
    says: str,
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    nothing_allowed = dataclasses.replace(context, allowed_networks=())
    destination = email_destination(make_destination, smtp_server, smtp_host=host)

    result = await EmailSender().send(destination, make_message(), nothing_allowed)

    assert result.error == f"destination not allowed: {says}"
    assert not result.retryable
    assert smtp_server.messages == []


@pytest.mark.skipif(LOOPBACK_NAME is None, reason="no host name here resolves to loopback only")
async def test_an_smtp_host_name_that_resolves_to_loopback_is_refused(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    nothing_allowed = dataclasses.replace(context, allowed_networks=())
    destination = email_destination(make_destination, smtp_server, smtp_host=LOOPBACK_NAME)

    result = await EmailSender().send(destination, make_message(), nothing_allowed)

    assert result.error == (
        f"destination not allowed: {LOOPBACK_NAME} resolves to 127.0.0.1, a loopback address"
    )
    assert not result.retryable
    assert smtp_server.messages == []


async def test_a_silent_server_times_out(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        destination = email_destination(
            make_destination, smtp_server, smtp_port=silent.getsockname()[1]
        )

        result = await EmailSender().send(
            destination, make_message(), dataclasses.replace(context, timeout=0.3)
        )

    assert result.error == "timed out after 0.3s"
    assert result.retryable


async def test_a_refused_connection_is_retryable(
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    destination = email_destination(make_destination, smtp_server, smtp_port=port)

    result = await EmailSender().send(destination, make_message(), context)

    assert result.error == f"connection refused by smtp host localhost:{port}"
    assert result.retryable


# -- no login in clear text; partly refused recipients -------------------------------------


class PlainAuthSmtpServer(SmtpServer):
    """Plain SMTP that offers AUTH without TLS, as a careless relay does; counts AUTH tries."""

    def __init__(self) -> None:
        super().__init__(mode="NONE")
        self.auth_attempts = 0
        unused, sock = self._controller, self._controller._sock
        unused.loop.close()  # never started; its socket is reused below
        self._controller = _SocketController(
            _Recorder(self),
            sock,
            server_hostname="localhost",
            authenticator=self._check,
            auth_require_tls=False,
        )

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.auth_attempts = 0

    def _check(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        with self._lock:
            self.auth_attempts += 1
        return super()._check(server, session, envelope, mechanism, data)


@pytest.fixture(scope="module")
async def plain_auth_server() -> AsyncIterator[PlainAuthSmtpServer]:
    async with PlainAuthSmtpServer() as server:
        yield server


def resolving_to(server: SmtpServer) -> Any:
    """``resolve_smtp_host`` as DNS would answer for a public host that is ``server``:
    no public SMTP server runs here, so the resolution is the one thing replaced."""

    async def resolve(host: str, port: int, allowed: Any) -> list[tuple[Any, Any]]:
        return [(socket.AF_INET, (server.host, server.port))]

    return resolve


async def test_a_login_is_never_sent_in_clear_text_outside_the_allowed_networks(
    plain_auth_server: PlainAuthSmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a channel saved with security NONE and a login (as rows from before the
    # save-time check are), whose host resolves to an address outside the allowed networks
    plain_auth_server.reset()
    monkeypatch.setattr(email_channel, "resolve_smtp_host", resolving_to(plain_auth_server))
    destination = email_destination(
        make_destination, plain_auth_server, smtp_host="smtp.example.com", security="NONE"
    )
    nothing_allowed = dataclasses.replace(context, allowed_networks=())

    result = await EmailSender().send(destination, make_message(), nothing_allowed)

    assert result.error == (
        "refusing to send the SMTP login in clear text to smtp.example.com (127.0.0.1): use "
        "security STARTTLS or TLS (plain text with a login only goes to "
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS)"
    )
    assert not result.retryable
    assert plain_auth_server.auth_attempts == 0
    assert plain_auth_server.messages == []


async def test_a_login_in_clear_text_goes_to_an_allowed_network(
    plain_auth_server: PlainAuthSmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # the control: 127.0.0.0/8 is allowed, so a local relay may take the login in plain text
    plain_auth_server.reset()
    destination = email_destination(
        make_destination, plain_auth_server, smtp_host="127.0.0.1", security="NONE"
    )

    result = await EmailSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [mail] = await plain_auth_server.wait_for_messages(1)
    assert (mail.over_tls, mail.authenticated_as) == (False, "tocsin")
    assert plain_auth_server.auth_attempts == 1


@pytest.mark.parametrize(
    ("refused", "reply"),
    [("reject@example.com", "550 5.1.1 No such user"), ("tempfail@example.com", "451 4.3.0")],
)
async def test_a_partly_refused_recipient_list_is_a_failure_that_names_them(
    refused: str,
    reply: str,
    smtp_server: SmtpServer,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = email_destination(
        make_destination, smtp_server, to=["ops@example.com", refused, "oncall@example.com"]
    )

    result = await EmailSender().send(destination, make_message(), context)

    assert not result.ok
    assert result.error is not None
    assert result.error.startswith(f"SMTP server refused 1 of 3 recipients ({refused}: {reply}")
    assert result.error.endswith("; the other 2 received the message")
    assert result.status_code == int(reply[:3])
    # a retry would send the whole message again to the two who have it
    assert not result.retryable
    [mail] = await smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com"]
