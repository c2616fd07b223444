"""Issue 4, acceptance 2: sendTest answers one result per channel, failures included,
and every test is in the audit log; POST /api/notifications/test does the same."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from tests.delivery.test_delivery import BOT, save
from tests.peers import HttpReceiver, SmtpServer
from tests.support import Api
from tocsin.storage.enums import Role

SEND_TEST = """mutation($kind: ChannelKind, $id: ID) { sendTest(kind: $kind, channelId: $id) {
  results { ok statusCode error latencyMs testedAt channel { id name kind } }
  errors { field code message } } }"""


def email_input(smtp: SmtpServer, **changes: Any) -> dict[str, Any]:
    return {
        "name": "mail",
        "to": ["ops@example.com"],
        "smtpHost": "localhost",
        "smtpPort": smtp.port,
        "security": "STARTTLS",
        "username": smtp.username,
        "password": smtp.password,
        "fromAddress": "tocsin@example.com",
        **changes,
    }


async def test_five_channels_one_failing(
    live: Api, receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    receiver.respond("/broken", 500, body="upstream exploded")
    await save(live, "Slack", {"name": "slack", "webhookUrl": receiver.url("/slack")})
    await save(live, "Discord", {"name": "discord", "webhookUrl": receiver.url("/discord")})
    await save(live, "Webhook", {"name": "broken", "url": receiver.url("/broken")})
    await save(live, "Telegram", {"name": "telegram", "botToken": BOT, "chatId": "42"})
    await save(live, "Email", email_input(smtp_server))

    payload = (await live.ok(SEND_TEST))["sendTest"]

    assert payload["errors"] == []
    results = {r["channel"]["name"]: r for r in payload["results"]}
    assert sorted(results) == ["broken", "discord", "mail", "slack", "telegram"]
    assert results["broken"]["ok"] is False
    assert results["broken"]["statusCode"] == 500
    assert "500" in results["broken"]["error"]
    for name in ("discord", "mail", "slack", "telegram"):
        assert results[name]["ok"] is True, results[name]
        assert results[name]["error"] is None
    assert len(await smtp_server.wait_for_messages(1)) == 1

    # the outcome is each channel's lastTest, and the call is audited with its outcome
    channels = await live.ok("{ channels { name lastTest { ok statusCode } } }")
    last = {c["name"]: c["lastTest"] for c in channels["channels"]}
    assert last["broken"] == {"ok": False, "statusCode": 500}
    audit = await live.ok('{ auditLog(action: "channel.test") { nodes { actor details } } }')
    [entry] = audit["auditLog"]["nodes"]
    assert entry["actor"] == "admin"
    outcome = {r["name"]: r["ok"] for r in entry["details"]["results"]}
    assert outcome == {n: n != "broken" for n in results}


async def test_wrong_smtp_password_is_a_clear_failure(live: Api, smtp_server: SmtpServer) -> None:
    channel_id = await save(live, "Email", email_input(smtp_server, password="wrong-password"))
    payload = (await live.ok(SEND_TEST, {"id": channel_id}))["sendTest"]
    [result] = payload["results"]
    assert result["ok"] is False
    assert "authentication" in result["error"].lower()
    assert "wrong-password" not in result["error"]


async def test_untrusted_certificate_is_a_clear_failure(live: Api, smtp_server: SmtpServer) -> None:
    # the system trust store does not know the test CA
    services = live.services
    services.send_context = dataclasses.replace(
        services.send_context, ssl_context=ssl.create_default_context()
    )
    channel_id = await save(live, "Email", email_input(smtp_server))
    payload = (await live.ok(SEND_TEST, {"id": channel_id}))["sendTest"]
    [result] = payload["results"]
    assert result["ok"] is False
    assert "certificate" in result["error"].lower()
    assert result["latencyMs"] < 3000  # answered, not hung until the timeout


async def test_nothing_configured(live: Api) -> None:
    payload = (await live.ok(SEND_TEST))["sendTest"]
    assert payload["results"] == []
    assert payload["errors"][0]["code"] == "NO_CHANNEL_CONFIGURED"
    response = await live.client.post(
        "/api/notifications/test",
        json={"kind": "slack"},
        headers={"Authorization": f"Bearer {live.admin_token}"},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "NO_CHANNEL_CONFIGURED"


async def test_rest_endpoint_matches_send_test(live: Api, receiver: HttpReceiver) -> None:
    channel_id = await save(live, "Slack", {"name": "ops", "webhookUrl": receiver.url("/s")})
    await save(live, "Discord", {"name": "other", "webhookUrl": receiver.url("/d")})
    response = await live.client.post(
        "/api/notifications/test",
        json={"kind": "slack"},
        headers={"Authorization": f"Bearer {live.admin_token}"},
    )
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert set(result) == {"channel_id", "kind", "name", "ok", "status_code", "error", "latency_ms"}
    assert result["channel_id"] == channel_id
    assert (result["kind"], result["name"], result["ok"], result["status_code"]) == (
        "slack",
        "ops",
        True,
        200,
    )
    assert [r.path for r in receiver.requests] == ["/s"]
    viewer = await live.token(Role.VIEWER)
    refused = await live.client.post(
        "/api/notifications/test", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert refused.status_code == 403
    anonymous = await live.client.post("/api/notifications/test")
    assert anonymous.status_code == 401
