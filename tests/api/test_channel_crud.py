"""Acceptance 2 (issue 3): each kind is created, updated, read back, muted and deleted;
``configured`` follows the kind's rules; absent/null/value behave as the contract says."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api

FIELDS = """
  id kind name enabled configured eventTypes minPriority metadataMatch mode mutedUntil
  maxRetries createdAt updatedAt
  ... on SlackChannel { webhookUrlSet webhookUrlHint }
  ... on DiscordChannel { webhookUrlSet webhookUrlHint }
  ... on WebhookChannel { urlSet urlHint signingSecretSet headerNames }
  ... on EmailChannel {
    to smtpHost smtpPort security username passwordSet fromAddress fromName verifyTls
  }
  ... on TelegramChannel { botTokenSet chatId }
  ... on TeamsChannel { webhookUrlSet webhookUrlHint }
"""

SAVE = {
    kind: f"""mutation($input: {kind}ChannelInput!) {{
      save: save{kind}Channel(input: $input) {{
        channel {{ {FIELDS} }} errors {{ field code message }} }} }}"""
    for kind in ("Slack", "Webhook", "Email", "Discord", "Telegram", "Teams")
}
READ = f"query($id: ID!) {{ channel(id: $id) {{ {FIELDS} }} }}"
SIGNING = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"

# kind, the secret field, a value for it, the *Set flag, fields that make it configured
CASES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("Slack", "webhookUrl", "https://hooks.slack.com/services/T0/B0/abcd9xQe", "webhookUrlSet", {}),
    ("Discord", "webhookUrl", "https://discord.com/api/webhooks/1/tok9xQe", "webhookUrlSet", {}),
    ("Webhook", "url", "https://receiver.example.com/hook/9xQe", "urlSet", {}),
    (
        "Teams",
        "webhookUrl",
        "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/9xQe",
        "webhookUrlSet",
        {},
    ),
    ("Telegram", "botToken", BOT, "botTokenSet", {"chatId": "-1001234567890"}),
    (
        "Email",
        "password",
        "hunter2-password",
        "passwordSet",
        {
            "to": ["ops@example.com"],
            "smtpHost": "smtp.example.com",
            "username": "tocsin@example.com",
        },
    ),
]


async def save(api: Api, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await api.ok(SAVE[kind], {"input": data}))["save"]
    return result


@pytest.mark.parametrize(("kind", "secret", "value", "flag", "required"), CASES)
async def test_channel_lifecycle(
    api: Api, kind: str, secret: str, value: str, flag: str, required: dict[str, Any]
) -> None:
    # given a new channel with only a name
    created = await save(api, kind, {"name": f"Ops {kind}"})
    assert created["errors"] == []
    channel = created["channel"]
    assert channel["kind"] == kind.upper()
    assert channel["configured"] is False
    assert channel[flag] is False
    channel_id = channel["id"]

    # when its secret and required fields are saved, then it is configured
    updated = await save(api, kind, {"id": channel_id, secret: value, **required})
    assert updated["errors"] == []
    assert updated["channel"][flag] is True
    assert updated["channel"]["configured"] is True
    assert updated["channel"]["name"] == f"Ops {kind}"  # absent: kept

    # when another field changes and the secret is absent, the secret is kept
    renamed = await save(api, kind, {"id": channel_id, "name": "Renamed", "maxRetries": 5})
    assert renamed["channel"][flag] is True
    assert renamed["channel"]["maxRetries"] == 5
    read = (await api.ok(READ, {"id": channel_id}))["channel"]
    assert read["name"] == "Renamed" and read[flag] is True and read["configured"] is True

    # when it is muted, then mutedUntil is shown; a null until unmutes
    until = "2031-01-01T00:00:00+00:00"
    muted = await api.ok(
        "mutation($id: ID!, $u: DateTime) { muteChannel(id: $id, until: $u) "
        "{ channel { mutedUntil } errors { code } } }",
        {"id": channel_id, "u": until},
    )
    assert muted["muteChannel"]["channel"]["mutedUntil"] == until
    unmuted = await api.ok(
        "mutation($id: ID!) { muteChannel(id: $id, until: null) { channel { mutedUntil } } }",
        {"id": channel_id},
    )
    assert unmuted["muteChannel"]["channel"]["mutedUntil"] is None

    # when the secret is sent as null, then it is cleared
    cleared = await save(api, kind, {"id": channel_id, secret: None})
    assert cleared["channel"][flag] is False
    if kind != "Email":  # an email channel needs no password to be configured
        assert cleared["channel"]["configured"] is False

    # when it is deleted, then it is gone
    deleted = await api.ok(
        "mutation($id: ID!) { deleteChannel(id: $id) { deletedId errors { code } } }",
        {"id": channel_id},
    )
    assert deleted["deleteChannel"] == {"deletedId": channel_id, "errors": []}
    assert (await api.ok(READ, {"id": channel_id}))["channel"] is None


async def test_url_hint_shows_scheme_host_and_last_four(api: Api) -> None:
    saved = await save(
        api, "Slack", {"webhookUrl": "https://hooks.slack.com/services/T0/B0/secretpart9xQe"}
    )
    assert saved["channel"]["webhookUrlHint"] == "https://hooks.slack.com/…/9xQe"


async def test_email_defaults_and_from_address_falls_back_to_username(api: Api) -> None:
    saved = await save(
        api,
        "Email",
        {"to": ["a@example.com"], "smtpHost": "smtp.example.com", "username": "bot@example.com"},
    )
    channel = saved["channel"]
    assert channel["smtpPort"] == 587
    assert channel["security"] == "STARTTLS"
    assert channel["verifyTls"] is True
    assert channel["fromAddress"] == "bot@example.com"
    assert channel["configured"] is True


async def test_email_is_not_configured_without_host(api: Api) -> None:
    saved = await save(api, "Email", {"to": ["a@example.com"]})
    assert saved["channel"]["configured"] is False


async def test_webhook_headers_replace_and_keep_saved_values(api: Api) -> None:
    first = await save(
        api,
        "Webhook",
        {
            "url": "https://receiver.example.com/hook",
            "signingSecret": SIGNING,
            "headers": {"X-Api-Key": "k1", "X-Team": "data"},
        },
    )
    channel = first["channel"]
    assert channel["headerNames"] == ["X-Api-Key", "X-Team"]
    assert channel["signingSecretSet"] is True
    # null keeps a header's saved value; a name left out is removed
    second = await save(api, "Webhook", {"id": channel["id"], "headers": {"X-Api-Key": None}})
    assert second["errors"] == []
    assert second["channel"]["headerNames"] == ["X-Api-Key"]
    cleared = await save(api, "Webhook", {"id": channel["id"], "headers": None})
    assert cleared["channel"]["headerNames"] == []


async def test_channels_lists_by_kind(api: Api) -> None:
    await save(api, "Slack", {"name": "one"})
    await save(api, "Discord", {"name": "two"})
    everything = await api.ok("{ channels { name kind } }")
    assert [c["name"] for c in everything["channels"]] == ["one", "two"]
    only = await api.ok("{ channels(kind: DISCORD) { name } }")
    assert only["channels"] == [{"name": "two"}]


async def test_every_change_is_audited_with_secrets_redacted(api: Api) -> None:
    saved = await save(api, "Slack", {"webhookUrl": "https://hooks.slack.com/services/AUDIT"})
    channel_id = saved["channel"]["id"]
    await save(api, "Slack", {"id": channel_id, "webhookUrl": None})
    await api.ok("mutation($id: ID!) { deleteChannel(id: $id) { deletedId } }", {"id": channel_id})
    log = await api.ok(
        "{ auditLog(first: 10) { totalCount nodes { actor action target details } } }"
    )
    entries = [e for e in log["auditLog"]["nodes"] if e["action"].startswith("channel.")]
    assert [e["action"] for e in entries] == ["channel.delete", "channel.update", "channel.create"]
    assert all(e["actor"] == "admin" and e["target"] == channel_id for e in entries)
    assert entries[2]["details"]["changes"]["webhook_url"] == "set"
    assert entries[1]["details"]["changes"]["webhook_url"] == "cleared"
    assert "AUDIT" not in str(log)
