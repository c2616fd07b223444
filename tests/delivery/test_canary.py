"""Issue 4, acceptance 8, and issue 7: no stored secret appears in a delivery row, an attempt
error, a log line or a payload — for every kind, failures included. Through each failure
path (a DNS failure, a TLS failure, an SMTP AUTH failure, an HTTP 500 whose body echoes the
request, a timeout) the canary (URL path parts, signing secret, header values, SMTP password,
bot token) is in no GraphQL answer, no log record of any logger at DEBUG, and no delivery,
attempt, audit, event or channel row."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.delivery.test_delivery import deliveries, emit, save
from tests.delivery.test_send_test import SEND_TEST
from tests.peers import HttpReceiver, LocalCA, SmtpServer
from tests.support import PG_URL, Api, eventually, make_settings, start_api

CANARY = "CANARY7f3a"
BOT = f"123456789:AA{CANARY}XXXXXXXXXXXXXXXXXXXXXXXXX"
SLACK_BOT = f"xoxb-1234567890-1234567890-{CANARY}abcdef"
SLACK_API = "/chat.postMessage"
SIGNING = "whsec_" + (CANARY + "0123456789abcdefghijklmnopqrstuv")[:32]
SENDGRID_KEY = f"SG.{CANARY}-0123456789.{CANARY}-0123456789abcdefghijklmnopqrstuvwxyz"
MAIL_SEND = "/v3/mail/send"
NOWHERE = "tocsin-canary.invalid"
TABLES = ("delivery", "delivery_attempt", "audit_entry", "event", "channel")


async def test_secrets_never_leak_while_delivering_and_failing(
    live: Api,
    receiver: HttpReceiver,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
    settings_dir: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    # given a channel of each kind whose secrets hold the canary, and receivers that echo it
    slack_path, discord_path, hook_path, teams_path = (
        f"/{k}/{CANARY}/x" for k in ("slack", "discord", "hook", "teams")
    )
    receiver.respond(teams_path, 400, body=f'{{"error": {{"message": "no flow {teams_path}"}}}}')
    receiver.respond(slack_path, 500, body=f"no such webhook {slack_path}")
    receiver.respond(discord_path, 404, body=f'{{"message": "Unknown Webhook {CANARY}"}}')
    receiver.respond(hook_path, 401, body=f"bad token Bearer {CANARY}")
    receiver.respond(f"/bot{BOT}/sendMessage", 401, body=f'{{"description": "bot{BOT}"}}')
    receiver.respond(SLACK_API, 200, body=f'{{"ok": false, "error": "not_authed {SLACK_BOT}"}}')
    receiver.respond(MAIL_SEND, 401, body=f'{{"errors": [{{"message": "bad {SENDGRID_KEY}"}}]}}')
    common = {"maxRetries": 0}
    await save(live, "Slack", {"webhookUrl": receiver.url(slack_path), **common})
    await save(live, "Discord", {"webhookUrl": receiver.url(discord_path), **common})
    await save(live, "Teams", {"webhookUrl": receiver.url(teams_path), **common})
    await save(
        live,
        "Webhook",
        {
            "url": receiver.url(hook_path),
            "headers": {"Authorization": f"Bearer {CANARY}"},
            **common,
        },
    )
    await save(live, "Telegram", {"botToken": BOT, "chatId": "42", **common})
    await save(live, "Slack", {"botToken": SLACK_BOT, "channel": "C0123ABCD", **common})
    await save(
        live,
        "Email",
        {
            "to": ["ops@example.com"],
            "smtpHost": "localhost",
            "smtpPort": smtp_server.port,
            "username": smtp_server.username,
            "password": f"{CANARY}-wrong",
            "fromAddress": "tocsin@example.com",
            **common,
        },
    )
    await save(live, "Email", sendgrid(**common))

    # when an event is delivered (and fails everywhere) and a test is sent
    await emit(live)

    async def all_failed() -> bool:
        nodes = await deliveries(live)
        return len(nodes) == 8 and all(n["status"] == "FAILED" for n in nodes)

    await eventually(all_failed, timeout=15)
    responses = [
        await live.gql(SEND_TEST),
        await live.gql(
            "{ deliveries(first: 50) { nodes { lastError lastStatusCode "
            "attempts { error statusCode } event { title detail metadata } } } }"
        ),
        await live.gql("{ channels { name lastTest { error } lastDelivery { lastError } } }"),
        await live.gql("{ auditLog(first: 100) { nodes { details target action } } }"),
        await live.gql("{ events { nodes { title detail metadata source } } }"),
    ]

    # then the canary is in no answer, no payload, no log line, no readable column
    for response in responses:
        assert CANARY not in str(response)
    errors = [
        a["error"] for d in responses[1]["data"]["deliveries"]["nodes"] for a in d["attempts"]
    ]
    assert len(errors) == 8 and all(errors)  # the failures were recorded, scrubbed
    for request in receiver.requests:
        assert CANARY.encode() not in request.body
    assert CANARY not in caplog.text
    if not PG_URL:
        for path in settings_dir.glob("tocsin.db*"):
            assert CANARY.encode() not in path.read_bytes(), path.name


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# -- issue 7: each failure path ------------------------------------------------------


def webhook(url: str) -> dict[str, Any]:
    return {
        "name": "hook",
        "url": url,
        "signingSecret": SIGNING,
        "headers": {"Authorization": f"Bearer {CANARY}-token", "X-Api-Key": f"{CANARY}-key"},
        "maxRetries": 0,
    }


def email(host: str, port: int, **changes: Any) -> dict[str, Any]:
    return {
        "name": "mail",
        "to": ["ops@example.com"],
        "smtpHost": host,
        "smtpPort": port,
        "username": "tocsin",
        "password": f"{CANARY}-smtp-pass",
        "fromAddress": "tocsin@example.com",
        "maxRetries": 0,
        **changes,
    }


def slack_bot() -> dict[str, Any]:
    return {"name": "slack bot", "botToken": SLACK_BOT, "channel": "C0123ABCD", "maxRetries": 0}


def sendgrid(**changes: Any) -> dict[str, Any]:
    return {
        "name": "sendgrid",
        "provider": "SENDGRID",
        "to": ["ops@example.com"],
        "fromAddress": "tocsin@example.com",
        "sendgridApiKey": SENDGRID_KEY,
        "maxRetries": 0,
        **changes,
    }


async def open_app(
    tmp_path: Path, database_url: str, ca: LocalCA, **settings: Any
) -> AsyncIterator[Api]:
    """The app with its worker, the test CA trusted (not the untrusted one)."""
    values = make_settings(tmp_path / "data", database_url, **settings)
    async for api in start_api(values, run_worker=True):
        services = api.services
        services.send_context = dataclasses.replace(
            services.send_context, ssl_context=ca.client_context()
        )
        yield api


async def fail_everything(api: Api, count: int) -> list[dict[str, Any]]:
    """Emit one event, wait until all ``count`` deliveries FAILED, then sendTest."""
    await emit(api)

    async def all_failed() -> bool:
        nodes = await deliveries(api)
        return len(nodes) == count and all(n["status"] == "FAILED" for n in nodes)

    await eventually(all_failed, timeout=20)
    answers = [
        await api.gql(SEND_TEST),
        await api.gql(
            "{ deliveries(first: 50) { nodes { status lastError lastStatusCode "
            "attempts { error statusCode } channel { name } } } }"
        ),
        await api.gql("{ channels { name lastTest { error } lastDelivery { lastError } } }"),
        await api.gql("{ auditLog(first: 100) { nodes { action target details } } }"),
    ]
    results = answers[0]["data"]["sendTest"]["results"]
    assert len(results) == count and not any(r["ok"] for r in results), results
    return answers


async def assert_no_canary(
    api: Api, answers: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The canary is nowhere; answers the recorded errors (each must say something)."""
    for answer in answers:
        assert CANARY not in str(answer)
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in f"{record.getMessage()} {record.exc_text} {record.stack_info}"
    async with api.services.db.read() as session:
        for table in TABLES:
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            assert rows or table == "audit_entry"
            assert CANARY not in str(rows), table
    errors: list[str] = [
        a["error"] for d in answers[1]["data"]["deliveries"]["nodes"] for a in d["attempts"]
    ] + [r["error"] for r in answers[0]["data"]["sendTest"]["results"]]
    assert all(errors), errors
    return errors


@pytest.fixture(autouse=True)
def _debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """Every logger at DEBUG, those that Tocsin quiets (httpx logs each URL at INFO) too."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


async def test_dns_failure(
    tmp_path: Path, database_url: str, ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    # given every kind pointed at a name that does not resolve
    async for api in open_app(
        tmp_path,
        database_url,
        ca,
        telegram_api_base=f"https://api.{NOWHERE}",
        slack_api_base=f"https://slack.{NOWHERE}/api",
        sendgrid_api_base=f"https://sendgrid.{NOWHERE}",
    ):
        await save(api, "Webhook", webhook(f"https://{NOWHERE}/hook/{CANARY}/in"))
        await save(
            api, "Slack", {"webhookUrl": f"https://{NOWHERE}/services/{CANARY}/x", "maxRetries": 0}
        )
        await save(
            api, "Teams", {"webhookUrl": f"https://{NOWHERE}/workflows/{CANARY}", "maxRetries": 0}
        )
        await save(api, "Telegram", {"botToken": BOT, "chatId": "42", "maxRetries": 0})
        await save(api, "Slack", slack_bot())
        await save(api, "Email", email(f"smtp.{NOWHERE}", 587))
        await save(api, "Email", sendgrid())
        # when it fails, then the errors say so without the canary
        errors = await assert_no_canary(api, await fail_everything(api, 7), caplog)
        assert all("resolve" in e for e in errors), errors


async def test_tls_failure(
    tmp_path: Path,
    database_url: str,
    ca: LocalCA,
    untrusted: HttpReceiver,
    untrusted_smtp: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given receivers whose certificates come from a CA the client does not trust
    async for api in open_app(
        tmp_path,
        database_url,
        ca,
        telegram_api_base=untrusted.base_url,
        slack_api_base=untrusted.base_url,
        sendgrid_api_base=untrusted.base_url,
    ):
        await save(api, "Webhook", webhook(untrusted.url(f"/hook/{CANARY}/in")))
        await save(
            api, "Discord", {"webhookUrl": untrusted.url(f"/api/{CANARY}/x"), "maxRetries": 0}
        )
        await save(
            api, "Teams", {"webhookUrl": untrusted.url(f"/workflows/{CANARY}"), "maxRetries": 0}
        )
        await save(api, "Telegram", {"botToken": BOT, "chatId": "42", "maxRetries": 0})
        await save(api, "Slack", slack_bot())
        await save(api, "Email", email("localhost", untrusted_smtp.port, security="TLS"))
        await save(api, "Email", sendgrid())
        errors = await assert_no_canary(api, await fail_everything(api, 7), caplog)
        assert all("TLS" in e or "certificate" in e for e in errors), errors
    assert untrusted.requests == []


async def test_smtp_auth_failure(
    tmp_path: Path,
    database_url: str,
    ca: LocalCA,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async for api in open_app(tmp_path, database_url, ca):
        await save(api, "Email", email("localhost", smtp_server.port))
        errors = await assert_no_canary(api, await fail_everything(api, 1), caplog)
    assert smtp_server.failed_logins >= 2 and smtp_server.messages == []
    # AUTH LOGIN sends the password base64-encoded; the server's DEBUG log shows that line
    assert base64.b64encode(f"{CANARY}-smtp-pass".encode()).decode() not in caplog.text
    assert all("535" in e or "auth" in e.lower() for e in errors), errors


async def test_http_500_echoing_the_request(
    tmp_path: Path,
    database_url: str,
    ca: LocalCA,
    receiver: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given receivers that answer 500 with the request's URL and headers in the body
    async for api in open_app(
        tmp_path,
        database_url,
        ca,
        telegram_api_base=receiver.base_url,
        slack_api_base=receiver.base_url,
        sendgrid_api_base=receiver.base_url,
    ):
        paths = {
            "hook": f"/hook/{CANARY}/in",
            "slack": f"/services/T0/{CANARY}/x",
            "discord": f"/api/webhooks/1/{CANARY}",
            "telegram": f"/bot{BOT}/sendMessage",
            "teams": f"/workflows/1/triggers/manual/paths/invoke/{CANARY}",
            "slack bot": SLACK_API,
            "sendgrid": MAIL_SEND,
        }
        for path in paths.values():
            url = receiver.url(path)
            body = (
                f"500 while handling POST {url}\nAuthorization: Bearer {CANARY}-token\n"
                f"X-Api-Key: {CANARY}-key\nsecret {SIGNING}\n"
                f'{{"url": "{url.replace("/", chr(92) + "/")}", "path": "{path}"}}'
            )
            receiver.respond(path, 500, body=body)
        receiver.respond(
            paths["telegram"], 500, body=f'{{"description": "no route /bot{BOT}/sendMessage"}}'
        )
        receiver.respond(SLACK_API, 500, body=f"500 for Authorization: Bearer {SLACK_BOT}")
        receiver.respond(
            MAIL_SEND,
            500,
            body=f'{{"errors": [{{"message": "while handling Bearer {SENDGRID_KEY}"}}]}}',
        )
        await save(api, "Webhook", webhook(receiver.url(paths["hook"])))
        await save(api, "Slack", {"webhookUrl": receiver.url(paths["slack"]), "maxRetries": 0})
        await save(api, "Discord", {"webhookUrl": receiver.url(paths["discord"]), "maxRetries": 0})
        await save(api, "Teams", {"webhookUrl": receiver.url(paths["teams"]), "maxRetries": 0})
        await save(api, "Telegram", {"botToken": BOT, "chatId": "42", "maxRetries": 0})
        await save(api, "Slack", slack_bot())
        await save(api, "Email", sendgrid())
        errors = await assert_no_canary(api, await fail_everything(api, 7), caplog)
        assert all(e.startswith("HTTP 500") for e in errors), errors
        assert any("[redacted]" in e for e in errors), errors  # the echo was kept, scrubbed
    assert len(receiver.requests) == 14


async def test_timeout(
    tmp_path: Path,
    database_url: str,
    ca: LocalCA,
    receiver: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given receivers that never answer (the SMTP "server" is an HTTP port: no greeting)
    async for api in open_app(
        tmp_path,
        database_url,
        ca,
        telegram_api_base=receiver.base_url,
        slack_api_base=receiver.base_url,
        sendgrid_api_base=receiver.base_url,
        delivery_timeout=1.0,
    ):
        teams = f"/workflows/{CANARY}/invoke"
        for path in (
            f"/hook/{CANARY}/in",
            f"/services/{CANARY}/x",
            f"/bot{BOT}/sendMessage",
            teams,
            SLACK_API,
            MAIL_SEND,
        ):
            receiver.respond(path, hang=10)
        await save(api, "Webhook", webhook(receiver.url(f"/hook/{CANARY}/in")))
        await save(
            api, "Slack", {"webhookUrl": receiver.url(f"/services/{CANARY}/x"), "maxRetries": 0}
        )
        await save(api, "Teams", {"webhookUrl": receiver.url(teams), "maxRetries": 0})
        await save(api, "Telegram", {"botToken": BOT, "chatId": "42", "maxRetries": 0})
        await save(api, "Slack", slack_bot())
        await save(api, "Email", email("127.0.0.1", receiver.port, security="NONE"))
        await save(api, "Email", sendgrid())
        errors = await assert_no_canary(api, await fail_everything(api, 7), caplog)
        assert all("timed out" in e for e in errors), errors


@pytest.fixture(scope="session")
def untrusted_ca() -> LocalCA:
    return LocalCA()


@pytest.fixture(scope="session")
async def untrusted(untrusted_ca: LocalCA) -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver(ca=untrusted_ca) as receiver:
        yield receiver


@pytest.fixture(scope="session")
async def untrusted_smtp(untrusted_ca: LocalCA) -> AsyncIterator[SmtpServer]:
    async with SmtpServer(ca=untrusted_ca, mode="TLS") as server:
        yield server
