"""SendGrid as an e-mail provider: the v3 Mail Send API against a real receiver that answers
as SendGrid does (202 Accepted; 401/403 for a refused key; 400 with ``errors[]``; 429 with
Retry-After), through the sender, the API, the worker, sendTest, REST and metrics."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import pytest

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.delivery.test_delivery import deliveries, emit, save, settled
from tests.delivery.test_send_test import SEND_TEST
from tests.peers import HttpReceiver, Reply
from tests.support import Api
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.email import EmailSender
from tocsin.channels.sendgrid import MAIL_SEND_PATH
from tocsin.settings import ConfigurationError, load_settings
from tocsin.storage.tables import ChannelRow

KEY = f"SG.{CANARY}-id0123.{CANARY}-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = "SG.other-id-0123456789.other-secret-0123456789abcdefghijklmnopqrs"
BAD_KEY_ANSWER = {
    "errors": [
        {
            "field": None,
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "help": None,
        }
    ]
}


def sendgrid_destination(make_destination: MakeDestination, **config: Any) -> Destination:
    values: dict[str, Any] = {
        "provider": "SENDGRID",
        "to": ["ops@example.com", "oncall@example.com"],
        "from_address": "tocsin@example.com",
        "from_name": "Tocsin Alerts",
    }
    values.update(config)
    return make_destination("EMAIL", config=values, secrets={"sendgrid_api_key": KEY})


@pytest.fixture
def sendgrid_context(context: SendContext, receiver: HttpReceiver) -> SendContext:
    """The channel tests' context, SendGrid's API base at the receiver."""
    return dataclasses.replace(context, sendgrid_api_base=receiver.base_url)


async def test_posts_the_v3_body_with_the_bearer_key_and_is_delivered_on_202(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # given SendGrid accepting the message as it does, with 202 and no body
    receiver.respond(MAIL_SEND_PATH, 202, body=b"")
    destination = sendgrid_destination(make_destination)
    message = make_message(detail="Model <stg_orders> failed & stopped")

    # when it is sent
    result = await EmailSender().send(destination, message, sendgrid_context)

    # then it is delivered, with the key as a bearer token and the v3 body
    assert (result.ok, result.status_code, result.error) == (True, 202, None)
    [request] = receiver.requests_to(MAIL_SEND_PATH)
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["personalizations"] == [
        {"to": [{"email": "ops@example.com"}, {"email": "oncall@example.com"}]}
    ]
    assert body["from"] == {"email": "tocsin@example.com", "name": "Tocsin Alerts"}
    assert body["subject"] == "[Tocsin] dbt build failed in staging"
    [text, html] = body["content"]
    assert (text["type"], html["type"]) == ("text/plain", "text/html")
    # and the parts are those the SMTP message carries
    smtp = dataclasses.replace(
        destination, config={**destination.config, "provider": "SMTP", "smtp_host": "localhost"}
    )
    mail = EmailSender().render(smtp, message, sendgrid_context)
    assert body["subject"] == mail["Subject"]
    assert text["value"] == mail.get_body(("plain",)).get_content()
    assert html["value"] == mail.get_body(("html",)).get_content()
    assert "Model &lt;stg_orders&gt; failed &amp; stopped" in html["value"]
    assert "environment: staging" in text["value"]


async def test_without_a_from_name_the_sender_is_the_address_alone(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(MAIL_SEND_PATH, 202, body=b"")
    destination = sendgrid_destination(make_destination, from_name=None, to="ops@example.com")

    result = await EmailSender().send(destination, make_message(), sendgrid_context)

    assert result.ok
    body = receiver.requests_to(MAIL_SEND_PATH)[0].json()
    assert body["from"] == {"email": "tocsin@example.com"}
    assert body["personalizations"] == [{"to": [{"email": "ops@example.com"}]}]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_final_and_never_quoted(
    status: int,
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # given SendGrid refusing the key, and quoting it (and its parts) back
    answer = {"errors": [*BAD_KEY_ANSWER["errors"], {"message": f"key {KEY} / {CANARY}-id0123"}]}
    receiver.respond(MAIL_SEND_PATH, status, body=json.dumps(answer))

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert (result.ok, result.retryable, result.status_code) == (False, False, status)
    assert result.error is not None
    assert result.error.startswith(
        f"SendGrid refused the API key (HTTP {status}): The provided authorization grant is "
        "invalid, expired, or revoked; key [redacted]"
    )
    assert CANARY not in result.error


async def test_another_4xx_is_final_with_sendgrids_messages(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    answer = {
        "errors": [
            {
                "field": "from.email",
                "message": "The from address does not match a verified Sender Identity.",
            },
            {"field": "subject", "message": "The subject is required. " * 20},
            {"message": "third"},
            {"message": "fourth"},
            {"message": "fifth"},
        ]
    }
    receiver.respond(MAIL_SEND_PATH, 400, body=json.dumps(answer))

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert (result.ok, result.retryable, result.status_code) == (False, False, 400)
    assert result.error is not None
    assert result.error.startswith(
        "SendGrid refused the message (HTTP 400): from.email: The from address does not match "
        "a verified Sender Identity.; subject: The subject is required."
    )
    assert result.error.endswith("; third; and 2 more")
    assert len(result.error) <= 300


async def test_an_answer_that_is_not_sendgrids_json_is_quoted_scrubbed(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(MAIL_SEND_PATH, 404, body=f"<html>no route; Authorization: Bearer {KEY}")

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert (result.ok, result.retryable) == (False, False)
    assert result.error == (
        "SendGrid refused the message (HTTP 404): <html>no route; Authorization: Bearer [redacted]"
    )


async def test_429_is_retried_after_retry_after(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    answer = {"errors": [{"field": None, "message": "too many requests"}]}
    receiver.respond(MAIL_SEND_PATH, 429, body=json.dumps(answer), retry_after="7")

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert (result.ok, result.retryable, result.retry_after) == (False, True, 7.0)
    assert result.error == "HTTP 429: too many requests"


async def test_429_without_retry_after_waits_for_the_rate_limit_reset(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    reset = int(time.time()) + 30
    receiver.respond(MAIL_SEND_PATH, 429, headers={"X-RateLimit-Reset": str(reset)})

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert result.retryable and result.retry_after is not None
    assert 20 <= result.retry_after <= 31


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried(
    status: int,
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(MAIL_SEND_PATH, status, body=b"")

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), sendgrid_context
    )

    assert (result.ok, result.retryable, result.error) == (False, True, f"HTTP {status}")


@pytest.mark.parametrize(
    ("config", "secrets", "error"),
    [
        ({}, {}, "SendGrid API key is not set"),
        ({"from_address": None}, {"sendgrid_api_key": KEY}, "no valid sender address"),
        ({"to": []}, {"sendgrid_api_key": KEY}, "no recipient address (Email To) is set"),
    ],
)
async def test_a_channel_that_cannot_send_sends_nothing(
    config: dict[str, Any],
    secrets: dict[str, Any],
    error: str,
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    values = {"provider": "SENDGRID", "to": ["ops@example.com"], "from_address": "a@example.com"}
    destination = make_destination("EMAIL", config={**values, **config}, secrets=secrets)

    result = await EmailSender().send(destination, make_message(), sendgrid_context)

    assert not result.ok and result.error is not None and result.error.startswith(error)
    assert receiver.requests == []


async def test_the_api_base_goes_through_the_egress_policy(
    receiver: HttpReceiver,
    sendgrid_context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # given an API base on loopback while no private network is allowed
    closed = dataclasses.replace(sendgrid_context, allowed_networks=())

    result = await EmailSender().send(
        sendgrid_destination(make_destination), make_message(), closed
    )

    assert (result.ok, result.retryable) == (False, False)
    assert result.error is not None and result.error.startswith("destination not allowed")
    assert receiver.requests == []


def test_the_api_base_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().sendgrid_api_base == "https://api.sendgrid.com"
    monkeypatch.setenv("TOCSIN_SENDGRID_API_BASE", "http://127.0.0.1:8082/")
    assert load_settings().sendgrid_api_base == "http://127.0.0.1:8082"
    monkeypatch.setenv("TOCSIN_SENDGRID_API_BASE", "api.sendgrid.com")
    with pytest.raises(ConfigurationError, match="TOCSIN_SENDGRID_API_BASE is invalid"):
        load_settings()


# -- through the API and the worker ----------------------------------------------------

EMAIL_FIELDS = "... on EmailChannel { provider sendgridApiKeySet to fromAddress fromName smtpHost }"
SAVE = (
    "mutation($i: EmailChannelInput!) { saveEmailChannel(input: $i) "
    f"{{ channel {{ id configured {EMAIL_FIELDS} }} errors {{ field code message }} }} }}"
)


def sendgrid_input(**changes: Any) -> dict[str, Any]:
    return {
        "name": "mail",
        "provider": "SENDGRID",
        "to": ["ops@example.com"],
        "fromAddress": "tocsin@example.com",
        "fromName": "Tocsin Alerts",
        "sendgridApiKey": KEY,
        **changes,
    }


async def test_save_read_deliver_and_test_a_sendgrid_channel(
    live: Api, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # given a SendGrid e-mail channel saved through saveEmailChannel
    receiver.respond(MAIL_SEND_PATH, 202, body=b"")
    channel_id = await save(live, "Email", sendgrid_input())
    [channel] = (await live.ok(f"{{ channels {{ id kind configured {EMAIL_FIELDS} }} }}"))[
        "channels"
    ]
    assert channel == {
        "id": channel_id,
        "kind": "EMAIL",
        "configured": True,
        "provider": "SENDGRID",
        "sendgridApiKeySet": True,
        "to": ["ops@example.com"],
        "fromAddress": "tocsin@example.com",
        "fromName": "Tocsin Alerts",
        "smtpHost": None,
    }

    # when an event is emitted, then SendGrid gets the v3 body and it is DELIVERED on 202
    await emit(live, detail="1 of 24 models failed", metadata={"environment": "staging"})
    [delivery] = await settled(live, 1)
    assert (delivery["status"], delivery["channelKind"]) == ("DELIVERED", "EMAIL")
    assert (delivery["lastStatusCode"], delivery["attemptCount"]) == (202, 1)
    assert await deliveries(live, kind="EMAIL") == [delivery]
    [request] = receiver.requests_to(MAIL_SEND_PATH)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json()
    assert body["personalizations"] == [{"to": [{"email": "ops@example.com"}]}]
    assert body["from"] == {"email": "tocsin@example.com", "name": "Tocsin Alerts"}
    assert body["subject"] == "[Tocsin] dbt build failed in staging"
    [text, html] = body["content"]
    assert "1 of 24 models failed" in text["value"] and "environment: staging" in text["value"]
    assert html["type"] == "text/html" and "<td>staging</td>" in html["value"]

    # and sendTest and the REST test endpoint reach it by kind
    tested = (await live.ok(SEND_TEST, {"kind": "EMAIL"}))["sendTest"]
    assert [(r["channel"]["id"], r["ok"], r["statusCode"]) for r in tested["results"]] == [
        (channel_id, True, 202)
    ]
    rest = await live.client.post(
        "/api/notifications/test",
        json={"kind": "email"},
        headers={"Authorization": f"Bearer {live.admin_token}"},
    )
    assert rest.status_code == 200
    [result] = rest.json()["results"]
    assert (result["kind"], result["ok"], result["status_code"]) == ("email", True, 202)
    assert len(receiver.requests_to(MAIL_SEND_PATH)) == 3

    # and the metrics count it as an e-mail delivery
    metrics = (await live.client.get("/metrics")).text
    assert 'tocsin_deliveries_total{kind="EMAIL",outcome="delivered"}' in metrics

    # and the key is in no answer, no audit entry and no log line
    audit = await live.ok("{ auditLog(first: 20) { nodes { action details } } }")
    assert '"sendgrid_api_key": "set"' in json.dumps(audit)
    for text_seen in (str(tested), rest.text, str(audit), caplog.text):
        assert CANARY not in text_seen


async def test_a_refused_key_fails_the_delivery_after_one_attempt(
    live: Api, receiver: HttpReceiver
) -> None:
    receiver.respond(MAIL_SEND_PATH, 401, body=json.dumps(BAD_KEY_ANSWER))
    await save(live, "Email", sendgrid_input(maxRetries=3))

    await emit(live)
    [delivery] = await settled(live, 1)

    assert (delivery["status"], delivery["attemptCount"]) == ("FAILED", 1)
    assert delivery["lastStatusCode"] == 401
    assert delivery["lastError"].startswith("SendGrid refused the API key (HTTP 401)")
    assert len(receiver.requests_to(MAIL_SEND_PATH)) == 1


async def test_429_with_retry_after_is_retried_after_that_wait(
    live: Api, receiver: HttpReceiver
) -> None:
    receiver.respond_in_turn(
        MAIL_SEND_PATH, Reply(status=429, retry_after=1), Reply(status=202, body=b"")
    )
    await save(live, "Email", sendgrid_input())

    await emit(live)
    [delivery] = await settled(live, 1)

    assert (delivery["status"], delivery["attemptCount"]) == ("DELIVERED", 2)
    first, second = receiver.requests_to(MAIL_SEND_PATH)
    assert second.monotonic - first.monotonic >= 1.0


async def test_the_key_is_checked_kept_cleared_and_replaced(
    live: Api, receiver: HttpReceiver
) -> None:
    # a key of the wrong shape is refused, without repeating it
    messages = []
    for key, code in [
        (f"{CANARY}-not-a-key", "INVALID_API_KEY"),
        (f"SG.{CANARY}", "INVALID_API_KEY"),
        ("  ", "REQUIRED"),
    ]:
        answer = await live.ok(SAVE, {"i": sendgrid_input(sendgridApiKey=key)})
        assert answer["saveEmailChannel"]["channel"] is None
        [error] = answer["saveEmailChannel"]["errors"]
        assert (error["field"], error["code"]) == (["sendgridApiKey"], code)
        messages.append(error["message"])
    assert messages[0].startswith("A SendGrid API key looks like SG.xxxx.yyyy")
    assert CANARY not in str(messages)

    # an update without the key keeps it
    channel_id = await save(live, "Email", sendgrid_input())
    kept = (await live.ok(SAVE, {"i": {"id": channel_id, "name": "renamed"}}))["saveEmailChannel"]
    assert (kept["channel"]["sendgridApiKeySet"], kept["channel"]["configured"]) == (True, True)

    # a new key replaces it: the next message carries the new one
    receiver.respond(MAIL_SEND_PATH, 202, body=b"")
    await live.ok(SAVE, {"i": {"id": channel_id, "sendgridApiKey": OTHER_KEY}})
    await live.ok(SEND_TEST, {"id": channel_id})
    [request] = receiver.requests_to(MAIL_SEND_PATH)
    assert request.headers["authorization"] == f"Bearer {OTHER_KEY}"

    # null clears it: no longer configured
    cleared = (await live.ok(SAVE, {"i": {"id": channel_id, "sendgridApiKey": None}}))[
        "saveEmailChannel"
    ]
    assert cleared["errors"] == []
    channel = cleared["channel"]
    assert (channel["sendgridApiKeySet"], channel["configured"]) == (False, False)
    actions = await live.ok("{ auditLog(first: 20) { nodes { details } } }")
    changes = [node["details"].get("changes") for node in actions["auditLog"]["nodes"]]
    assert {"sendgrid_api_key": "cleared"} in changes
    assert "other-secret" not in json.dumps(actions)


async def test_sendgrid_is_configured_with_to_key_and_from_address(api: Api) -> None:
    for missing in ("to", "fromAddress", "sendgridApiKey"):
        data = {k: v for k, v in sendgrid_input().items() if k != missing}
        saved = (await api.ok(SAVE, {"i": data}))["saveEmailChannel"]
        assert saved["errors"] == []
        assert saved["channel"]["configured"] is False, missing
        # the username is not a SendGrid sender, as it may be an SMTP one
        if missing == "fromAddress":
            with_user = {"id": saved["channel"]["id"], "username": "tocsin@example.com"}
            again = (await api.ok(SAVE, {"i": with_user}))["saveEmailChannel"]["channel"]
            assert (again["configured"], again["fromAddress"]) == (False, None)
    saved = (await api.ok(SAVE, {"i": sendgrid_input()}))["saveEmailChannel"]
    assert saved["channel"]["configured"] is True
    # and SMTP's own rule is unchanged: the same channel over SMTP needs its host
    smtp = {"id": saved["channel"]["id"], "provider": "SMTP"}
    assert (await api.ok(SAVE, {"i": smtp}))["saveEmailChannel"]["channel"]["configured"] is False
    smtp = {"id": saved["channel"]["id"], "smtpHost": "smtp.example.com"}
    channel = (await api.ok(SAVE, {"i": smtp}))["saveEmailChannel"]["channel"]
    assert (channel["provider"], channel["configured"]) == ("SMTP", True)


async def test_a_channel_saved_before_providers_reads_as_smtp(api: Api) -> None:
    # given an SMTP channel whose stored config has no provider (as rows saved before it)
    data = {"to": ["ops@example.com"], "smtpHost": "smtp.example.com"}
    channel_id = (await api.ok(SAVE, {"i": data}))["saveEmailChannel"]["channel"]["id"]
    async with api.services.db.write() as session:
        row = await session.get(ChannelRow, channel_id)
        assert row is not None
        config = dict(row.config)
        assert config.pop("provider") == "SMTP"
        row.config = config

    channel = (await api.ok(f'{{ channel(id: "{channel_id}") {{ configured {EMAIL_FIELDS} }} }}'))[
        "channel"
    ]

    assert (channel["provider"], channel["configured"]) == ("SMTP", True)
    assert channel["sendgridApiKeySet"] is False


async def test_the_plaintext_login_check_is_for_smtp_only(api: Api) -> None:
    # given a login over a plain-text SMTP connection to an address outside the allowed networks
    login = {"security": "NONE", "smtpHost": "8.8.8.8", "username": "u", "password": "p"}

    # when the channel sends through SendGrid, then nothing goes to that server: it is saved
    saved = (await api.ok(SAVE, {"i": sendgrid_input(**login)}))["saveEmailChannel"]
    assert saved["errors"] == [] and saved["channel"]["configured"] is True

    # and when it is switched back to SMTP, the login is refused as it is for any SMTP channel
    back = {"id": saved["channel"]["id"], "provider": "SMTP"}
    [error] = (await api.ok(SAVE, {"i": back}))["saveEmailChannel"]["errors"]
    assert (error["field"], error["code"]) == (["security"], "PLAINTEXT_LOGIN_NOT_ALLOWED")
    smtp = {"to": ["ops@example.com"], **login}
    [error] = (await api.ok(SAVE, {"i": smtp}))["saveEmailChannel"]["errors"]
    assert error["code"] == "PLAINTEXT_LOGIN_NOT_ALLOWED"
