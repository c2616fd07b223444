"""Discord: webhook JSON with ``content`` and exactly one embed, inside Discord's limits."""

from __future__ import annotations

from typing import Any

from tocsin.channels import fields
from tocsin.channels.base import (
    Destination,
    Digest,
    Field,
    Kind,
    Message,
    SendContext,
    SendResult,
)
from tocsin.channels.digest_layout import (
    Entry,
    event_detail,
    event_title,
    lay_out,
    period_text,
    title_text,
)
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

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """An embed per event; split at 10 embeds and 6 000 characters."""
        return discord_digest_payloads(digest, context.message_prefix)

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        return await self.send_rendered(
            destination, self.render(destination, message, context), context
        )

    async def send_rendered(
        self, destination: Destination, rendered: Any, context: SendContext
    ) -> SendResult:
        url = destination.secrets.get("webhook_url")
        if not url:
            return SendResult(ok=False, latency_ms=0.0, error="Discord webhook URL is not set")
        return await post(
            context, destination, url, content=json_body(rendered), headers=JSON_HEADERS
        )


# Digests: the headline and period as ``content``, then one embed per event.

MAX_EMBEDS = 10


def discord_digest_payloads(digest: Digest, prefix: str) -> list[dict[str, Any]]:
    """The digest as consecutive messages of at most 10 embeds and 6 000 embed characters."""
    entries = [_digest_embed(message) for message in digest.messages]
    parts = lay_out(digest, entries, lambda part: (0, 0), (MAX_EMBEDS, EMBED_LIMIT))
    return [
        {
            "content": truncate(
                f"{title_text(prefix, digest, part)}\n{period_text(digest, part)}", CONTENT_LIMIT
            ),
            "embeds": [entry.content for entry in chosen],
            "allowed_mentions": {"parse": []},
        }
        for part, chosen in parts
    ]


def _digest_embed(message: Message) -> Entry:
    title, title_cut = event_title(message, TITLE_LIMIT)
    detail, detail_cut = event_detail(message)
    footer = truncate(f"{message.event_type} · {message.priority}", FOOTER_LIMIT)
    embed: dict[str, Any] = {
        "title": title,
        "color": PRIORITY_COLOURS.get(message.priority, PRIORITY_COLOURS["INFO"]),
        "footer": {"text": footer},
        "timestamp": as_utc(message.occurred_at).isoformat(),
    }
    if detail:
        embed["description"] = detail
    size = text_length(title) + text_length(detail) + text_length(footer)
    return Entry(embed, (1, size), shortened=title_cut or detail_cut)
