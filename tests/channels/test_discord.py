"""Discord: content plus exactly one embed, always inside Discord's limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.peers import HttpReceiver
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.discord import PRIORITY_COLOURS, DiscordSender
from tocsin.channels.rendering import text_length

HOOK = f"/api/webhooks/1234567890/{CANARY}"


def discord_destination(make_destination: MakeDestination, url: str) -> Destination:
    return make_destination("DISCORD", secrets={"webhook_url": url})


def embed_size(embed: dict[str, Any]) -> int:
    """Characters Discord counts against the 6000 limit of an embed."""
    parts = [embed.get("title", ""), embed.get("description", ""), embed["footer"]["text"]]
    parts += [f["name"] + f["value"] for f in embed["fields"]]
    return sum(text_length(part) for part in parts)


def assert_within_discord_limits(payload: dict[str, Any]) -> None:
    assert text_length(payload["content"]) <= 2000
    [embed] = payload["embeds"]
    assert text_length(embed["title"]) <= 256
    assert text_length(embed.get("description", "")) <= 4096
    assert len(embed["fields"]) <= 25
    for field in embed["fields"]:
        assert 0 < text_length(field["name"]) <= 256
        assert 0 < text_length(field["value"]) <= 1024
    assert embed_size(embed) <= 6000


async def test_receiver_gets_content_and_one_embed(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 204, body=b"")
    destination = discord_destination(make_destination, receiver.url(HOOK))

    result = await DiscordSender().send(destination, make_message(), context)

    assert result.ok, result.error
    assert result.status_code == 204
    payload = receiver.requests_to(HOOK)[0].json()
    assert payload["content"] == "[Tocsin] dbt build failed in staging"
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["title"] == "dbt build failed in staging"
    assert embed["description"] == "1 of 24 models failed: stg_orders"
    assert embed["color"] == PRIORITY_COLOURS["HIGH"]
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("environment", "staging"),
        ("command", "build"),
    ]
    assert embed["timestamp"] == "2026-06-12T09:15:00+00:00"
    assert "refresh_failed" in embed["footer"]["text"]


@pytest.mark.parametrize("priority", ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"])
async def test_colour_follows_priority(
    priority: str,
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = discord_destination(make_destination, receiver.url(HOOK))

    await DiscordSender().send(destination, make_message(priority=priority), context)

    [embed] = receiver.requests_to(HOOK)[0].json()["embeds"]
    assert embed["color"] == PRIORITY_COLOURS[priority]
    assert len(set(PRIORITY_COLOURS.values())) == 5


async def test_limits_hold_for_a_huge_detail_and_forty_metadata_keys(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = discord_destination(make_destination, receiver.url(HOOK))
    message = make_message(
        title="🔥" * 300,
        detail="d" * 10_000,
        metadata={f"{'k' * 300}{i}": "v" * 2000 for i in range(40)},
    )

    result = await DiscordSender().send(destination, message, context)

    assert result.ok, result.error
    payload = receiver.requests_to(HOOK)[0].json()
    assert_within_discord_limits(payload)
    [embed] = payload["embeds"]
    assert embed["description"].startswith("d" * 1000)
    assert embed["description"].endswith("…")
    assert "more metadata fields not shown" in embed["fields"][-1]["value"]


async def test_limits_hold_for_forty_short_metadata_keys(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = discord_destination(make_destination, receiver.url(HOOK))
    message = make_message(detail="d" * 10_000, metadata={f"key{i}": i for i in range(40)})

    await DiscordSender().send(destination, message, context)

    payload = receiver.requests_to(HOOK)[0].json()
    assert_within_discord_limits(payload)
    fields = payload["embeds"][0]["fields"]
    assert len(fields) == 25
    assert fields[0] == {"name": "key0", "value": "0", "inline": True}
    assert fields[-1]["value"] == "16 more metadata fields not shown"


async def test_rate_limit_reports_discords_message_and_delay(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(
        HOOK,
        429,
        body='{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}',
        retry_after="2",
    )
    destination = discord_destination(make_destination, receiver.url(HOOK))

    result = await DiscordSender().send(destination, make_message(), context)

    assert result.error == "HTTP 429: You are being rate limited."
    assert (result.retryable, result.retry_after) == (True, 2.0)


async def test_unknown_webhook_is_final_and_keeps_the_token_secret(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 404, body=f'{{"message": "Unknown Webhook {HOOK}", "code": 10015}}')
    destination = discord_destination(make_destination, receiver.url(HOOK))

    result = await DiscordSender().send(destination, make_message(), context)

    assert not result.retryable
    assert result.error is not None
    assert result.error.startswith("HTTP 404: Unknown Webhook")
    assert CANARY not in result.error
