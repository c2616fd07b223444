"""Issue 4, acceptance 8: no stored secret appears in a delivery row, an attempt error, a
log line or a payload — for all five kinds, failures included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.delivery.test_delivery import deliveries, emit, save
from tests.delivery.test_send_test import SEND_TEST
from tests.peers import HttpReceiver, SmtpServer
from tests.support import PG_URL, Api, eventually

CANARY = "CANARY7f3a"
BOT = f"123456789:AA{CANARY}XXXXXXXXXXXXXXXXXXXXXXXXX"


async def test_secrets_never_leak_while_delivering_and_failing(
    live: Api,
    receiver: HttpReceiver,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
    settings_dir: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    # given five channels whose secrets hold the canary, and receivers that echo it back
    slack_path, discord_path, hook_path = (f"/{k}/{CANARY}/x" for k in ("slack", "discord", "hook"))
    receiver.respond(slack_path, 500, body=f"no such webhook {slack_path}")
    receiver.respond(discord_path, 404, body=f'{{"message": "Unknown Webhook {CANARY}"}}')
    receiver.respond(hook_path, 401, body=f"bad token Bearer {CANARY}")
    receiver.respond(f"/bot{BOT}/sendMessage", 401, body=f'{{"description": "bot{BOT}"}}')
    common = {"maxRetries": 0}
    await save(live, "Slack", {"webhookUrl": receiver.url(slack_path), **common})
    await save(live, "Discord", {"webhookUrl": receiver.url(discord_path), **common})
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

    # when an event is delivered (and fails everywhere) and a test is sent
    await emit(live)

    async def all_failed() -> bool:
        nodes = await deliveries(live)
        return len(nodes) == 5 and all(n["status"] == "FAILED" for n in nodes)

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
    assert len(errors) == 5 and all(errors)  # the failures were recorded, scrubbed
    for request in receiver.requests:
        assert CANARY.encode() not in request.body
    assert CANARY not in caplog.text
    if not PG_URL:
        for path in settings_dir.glob("tocsin.db*"):
            assert CANARY.encode() not in path.read_bytes(), path.name


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
