"""Discord: webhook JSON with ``content`` and exactly one embed, inside Discord's limits."""

from __future__ import annotations

from typing import Any

from tocsin.channels import fields
from tocsin.channels.base import Destination, Field, Kind, Message, SendContext, SendResult
from tocsin.channels.http import JSON_HEADERS, json_body, post
from tocsin.channels.rendering import (
    as_utc,
    headline,
    items_that_fit,
    metadata_items,
    text_length,
    truncate,
)

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_LIMIT = 6000
DETAIL_GUARANTEE = 2000
"Characters of the detail kept even when metadata has to make room for it."

PRIORITY_COLOURS = {
    "CRITICAL": 0x992D22,
    "HIGH": 0xE74C3C,
    "MEDIUM": 0xE67E22,
    "LOW": 0x3498DB,
    "INFO": 0x95A5A6,
}
BLANK = "\u200b"  # Discord refuses empty field names and values.


def discord_payload(message: Message, prefix: str) -> dict[str, Any]:
    """``content`` plus one embed whose parts and total fit Discord's limits."""
    title = truncate(message.title, TITLE_LIMIT)
    footer = truncate(f"{message.event_type} · {message.priority}", FOOTER_LIMIT)
    budget = EMBED_LIMIT - text_length(title) - text_length(footer)

    fields = [
        (truncate(key, FIELD_NAME_LIMIT) or BLANK, truncate(value, FIELD_VALUE_LIMIT) or BLANK)
        for key, value in metadata_items(message.metadata)
    ]
    detail = message.detail or ""
    reserved = min(text_length(detail), DESCRIPTION_LIMIT, DETAIL_GUARANTEE)
    sizes = [text_length(name) + text_length(value) for name, value in fields]
    kept = items_that_fit(
        sizes,
        budget - reserved,
        lambda dropped: sum(map(text_length, _more_field(dropped))),
        max_count=FIELD_COUNT_LIMIT if len(fields) <= FIELD_COUNT_LIMIT else FIELD_COUNT_LIMIT - 1,
    )
    if kept < len(fields):
        fields = [*fields[:kept], _more_field(len(fields) - kept)]
    used = sum(text_length(name) + text_length(value) for name, value in fields)

    embed: dict[str, Any] = {
        "title": title,
        "color": PRIORITY_COLOURS.get(message.priority, PRIORITY_COLOURS["INFO"]),
        "fields": [{"name": name, "value": value, "inline": True} for name, value in fields],
        "footer": {"text": footer},
        "timestamp": as_utc(message.occurred_at).isoformat(),
    }
    if detail:
        embed["description"] = truncate(detail, min(DESCRIPTION_LIMIT, budget - used))
    return {
        "content": truncate(headline(prefix, message.title), CONTENT_LIMIT),
        "embeds": [embed],
        # Event text must never ping @everyone, a role or a user.
        "allowed_mentions": {"parse": []},
    }


def _more_field(dropped: int) -> tuple[str, str]:
    return "…", f"{dropped} more metadata fields not shown"


class DiscordSender(Kind):
    kind = "DISCORD"
    label = "Discord"
    fields = (Field("webhookUrl", "webhook_url", private=True, hinted=True, check=fields.url),)
    required = ("webhook_url",)

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        return discord_payload(message, context.message_prefix)

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        url = destination.secrets.get("webhook_url")
        if not url:
            return SendResult(ok=False, latency_ms=0.0, error="Discord webhook URL is not set")
        body = json_body(self.render(destination, message, context))
        return await post(context, destination, url, content=body, headers=JSON_HEADERS)
