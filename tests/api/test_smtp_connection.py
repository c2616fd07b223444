"""testSmtpConnection against real SMTP servers on loopback (aiosmtpd, trustme CA): it
connects, negotiates TLS and logs in, names the stage that failed with the server's answer,
tests unsaved edits of a saved channel with its stored password, never sends mail, and never
lets the password out (answer, log record, audit entry)."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.peers import LocalCA, SmtpServer
from tests.support import Api

CANARY = "smtp-CANARY-p4ss-0f-the-test"
TEST = """mutation($id: ID, $input: EmailChannelInput) {
  testSmtpConnection(id: $id, input: $input) {
    ok stage error latencyMs statusCode errors { field code message } } }"""
SAVE = """mutation($input: EmailChannelInput!) { saveEmailChannel(input: $input) {
  channel { id ... on EmailChannel { smtpPort passwordSet } } errors { field code } } }"""
AUDIT = """{ auditLog(first: 50, action: "channel.smtp_test") {
  nodes { actor action target details } } }"""


class EchoingServer(SmtpServer):
    """Refuses every login with an answer that quotes the password it was sent."""

    def _check(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        sent = data.password.decode() if isinstance(data, LoginPassword) else "?"
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {sent}")


@pytest.fixture(scope="module")
async def plain_server() -> AsyncIterator[SmtpServer]:
    """Plain SMTP that offers no STARTTLS."""
    async with SmtpServer(mode="NONE") as server:
        yield server


@pytest.fixture(scope="module")
async def tls_server(ca: LocalCA) -> AsyncIterator[SmtpServer]:
    async with SmtpServer(ca=ca, mode="TLS") as server:
        yield server


@pytest.fixture(scope="module")
async def echoing_server(ca: LocalCA) -> AsyncIterator[SmtpServer]:
    async with EchoingServer(ca=ca, mode="STARTTLS") as server:
        yield server


@pytest.fixture
def trusting(api: Api, ca: LocalCA) -> Api:
    """The app, trusting the test CA for SMTP's TLS."""
    services = api.services
    services.send_context = dataclasses.replace(
        services.send_context, ssl_context=ca.client_context()
    )
    return api


def smtp_input(server: SmtpServer, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "smtpHost": "localhost",
        "smtpPort": server.port,
        "security": server.mode,
        "username": server.username,
        "password": server.password,
    }
    values.update(changes)
    return values


async def smtp_test(api: Api, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await api.ok(TEST, variables))["testSmtpConnection"]
    return result


def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def audit_entries(api: Api) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await api.ok(AUDIT))["auditLog"]["nodes"]
    return nodes


# -- the stages --------------------------------------------------------------------------


async def test_the_right_password_is_ok_and_sends_no_mail(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    result = await smtp_test(trusting, input=smtp_input(smtp_server))

    assert result["ok"] is True, result
    assert result["stage"] is None and result["error"] is None and result["errors"] == []
    assert result["latencyMs"] > 0
    assert smtp_server.failed_logins == 0
    assert smtp_server.messages == []
    # and the test is audited, with no trace of the password
    [entry] = await audit_entries(trusting)
    assert entry["actor"] == "admin" and entry["target"] is None
    details = entry["details"]
    assert details["ok"] is True and details["stage"] is None
    assert details["smtp_host"] == "localhost" and details["smtp_port"] == smtp_server.port
    assert details["password"] == "set"
    assert smtp_server.password not in json.dumps(entry)


async def test_implicit_tls_logs_in(trusting: Api, tls_server: SmtpServer) -> None:
    result = await smtp_test(trusting, input=smtp_input(tls_server))

    assert result["ok"] is True, result
    assert tls_server.messages == []


async def test_a_wrong_password_fails_at_auth_with_the_servers_answer(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    result = await smtp_test(trusting, input=smtp_input(smtp_server, password=f"wrong-{CANARY}"))

    assert result["ok"] is False
    assert result["stage"] == "AUTH"
    assert result["error"].startswith("SMTP authentication failed (535 ")
    assert result["statusCode"] == 535
    assert result["errors"] == []
    assert smtp_server.failed_logins >= 1
    assert smtp_server.messages == []


async def test_a_closed_port_fails_at_connect(trusting: Api, smtp_server: SmtpServer) -> None:
    port = closed_port()

    result = await smtp_test(trusting, input=smtp_input(smtp_server, smtpPort=port))

    assert (result["ok"], result["stage"]) == (False, "CONNECT")
    assert result["error"] == f"connection refused by smtp host localhost:{port}"


async def test_a_server_that_never_greets_is_bounded_by_the_delivery_timeout(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    # given a port that takes the connection and then says nothing
    services = trusting.services
    services.send_context = dataclasses.replace(services.send_context, timeout=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()

        result = await smtp_test(trusting, input=smtp_input(smtp_server, smtpPort=port))

    assert (result["ok"], result["stage"]) == (False, "CONNECT")
    assert result["error"] == "timed out after 0.5s"
    assert time.monotonic() - started < 5


async def test_an_untrusted_certificate_fails_at_tls(api: Api, smtp_server: SmtpServer) -> None:
    services = api.services
    services.send_context = dataclasses.replace(
        services.send_context, ssl_context=ssl.create_default_context()
    )

    result = await smtp_test(api, input=smtp_input(smtp_server))

    assert (result["ok"], result["stage"]) == (False, "TLS")
    assert result["error"] == "TLS certificate verification failed for smtp host localhost"
    assert smtp_server.failed_logins == 0 and smtp_server.messages == []


async def test_starttls_required_is_not_downgraded(trusting: Api, plain_server: SmtpServer) -> None:
    # given a server that offers no STARTTLS, and a channel that requires it
    plain_server.reset()
    result = await smtp_test(trusting, input=smtp_input(plain_server, security="STARTTLS"))

    # then the test stops at TLS, before any login
    assert (result["ok"], result["stage"]) == (False, "TLS")
    assert result["error"] == "SMTP server localhost does not offer STARTTLS"
    assert plain_server.failed_logins == 0 and plain_server.messages == []


# -- a saved channel, edited ---------------------------------------------------------------


async def saved_channel(api: Api, server: SmtpServer, **changes: Any) -> str:
    values = smtp_input(server, to=["ops@example.com"], **changes)
    saved = (await api.ok(SAVE, {"input": values}))["saveEmailChannel"]
    assert saved["errors"] == [], saved
    channel_id: str = saved["channel"]["id"]
    return channel_id


async def test_an_unsaved_edit_is_tested_with_the_stored_password(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    # given a channel saved with the right password but a port where nothing listens
    wrong_port = closed_port()
    channel_id = await saved_channel(trusting, smtp_server, smtpPort=wrong_port)
    assert (await smtp_test(trusting, id=channel_id))["stage"] == "CONNECT"

    # when the form's unsaved edit (the right port, no password typed) is tested
    result = await smtp_test(trusting, id=channel_id, input={"smtpPort": smtp_server.port})

    # then it logs in with the stored password, and saves nothing
    assert result["ok"] is True, result
    assert smtp_server.failed_logins == 0 and smtp_server.messages == []
    channel = await trusting.ok(
        f'{{ channel(id: "{channel_id}") {{ ... on EmailChannel {{ smtpPort }} }} }}'
    )
    assert channel["channel"]["smtpPort"] == wrong_port
    entries = await audit_entries(trusting)
    assert entries[0]["target"] == channel_id
    assert entries[0]["details"]["edited"] == ["smtp_port"]


async def test_a_typed_password_replaces_the_stored_one_for_the_test(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    channel_id = await saved_channel(trusting, smtp_server)

    result = await smtp_test(trusting, id=channel_id, input={"password": f"typo-{CANARY}"})

    assert (result["ok"], result["stage"]) == (False, "AUTH")


async def test_the_rest_of_the_form_is_not_checked_or_used(
    trusting: Api, smtp_server: SmtpServer
) -> None:
    # given the whole Email form, whose recipients and SendGrid key are not valid yet
    form = smtp_input(smtp_server, to=["not an address"], sendgridApiKey="nope")

    result = await smtp_test(trusting, input={**form, "provider": "SENDGRID"})

    # then only the SMTP fields count
    assert result["ok"] is True, result
    [entry] = await audit_entries(trusting)
    assert entry["details"]["edited"] == [
        "password",
        "security",
        "smtp_host",
        "smtp_port",
        "username",
    ]


async def test_an_unknown_id_is_not_found(trusting: Api) -> None:
    result = await smtp_test(trusting, id="01deadbeef0000000000000000000000")

    assert (result["ok"], result["stage"]) == (False, "CONNECT")
    assert [(e["field"], e["code"]) for e in result["errors"]] == [(["id"], "NOT_FOUND")]
    assert result["error"] == result["errors"][0]["message"]


# -- input refused before connecting ------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"smtpHost": "169.254.169.254"}, "smtpHost", "DESTINATION_NOT_ALLOWED"),
        ({"smtpHost": "bad host!"}, "smtpHost", "INVALID_HOST"),
        ({"smtpHost": None}, "smtpHost", "REQUIRED"),
        ({"smtpPort": 70000}, "smtpPort", "INVALID_PORT"),
        ({"smtpHost": "8.8.8.8", "security": "NONE"}, "security", "PLAINTEXT_LOGIN_NOT_ALLOWED"),
    ],
)
async def test_input_the_sender_would_refuse_is_not_connected_to(
    trusting: Api, smtp_server: SmtpServer, changes: dict[str, Any], field: str, code: str
) -> None:
    result = await smtp_test(trusting, input=smtp_input(smtp_server, **changes))

    assert (result["ok"], result["stage"]) == (False, "CONNECT")
    assert [(e["field"], e["code"]) for e in result["errors"]] == [([field], code)]
    assert result["error"] == result["errors"][0]["message"]
    assert result["latencyMs"] == 0
    [entry] = await audit_entries(trusting)
    assert entry["details"]["problems"] == [code]


# -- the password stays in ----------------------------------------------------------------


async def test_the_password_is_in_no_answer_log_record_or_audit_entry(
    trusting: Api, echoing_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # given a saved channel whose server quotes the password it was sent in its refusal
    caplog.set_level(logging.DEBUG)
    channel_id = await saved_channel(trusting, echoing_server, password=CANARY)
    answers = [
        await smtp_test(trusting, id=channel_id),
        await smtp_test(trusting, input=smtp_input(echoing_server, password=f"typed-{CANARY}")),
        await smtp_test(trusting, id=channel_id, input={"smtpPort": echoing_server.port}),
    ]

    # then each is named AUTH with the server's answer, the password cut out of it
    assert echoing_server.failed_logins >= 3
    for answer in answers:
        assert answer["stage"] == "AUTH"
        assert answer["error"].startswith("SMTP authentication failed (535 5.7.8 bad password ")
    everything = json.dumps(answers) + json.dumps(await audit_entries(trusting))
    assert len(await audit_entries(trusting)) == 3
    assert CANARY not in everything
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged if CANARY in line]
    assert echoing_server.messages == []
