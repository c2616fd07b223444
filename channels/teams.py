"""Microsoft Teams: an Adaptive Card posted to a Workflows webhook URL.

Workflows (Power Automate) answers 202 Accepted, sometimes 200, for a message it took;
429 with Retry-After when throttled; other 4xx are final. ``channels/http.py`` judges
those like any other HTTP answer.
"""

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
    Cost,
    Entry,
    PartInfo,
    event_detail,
    event_title,
    lay_out,
    period_text,
    title_text,
)
from tocsin.channels.http import JSON_HEADERS, json_body, post
from tocsin.channels.rendering import headline, human_time, metadata_items, truncate

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
TITLE_LIMIT = 500
DETAIL_LIMIT = 10_000
FACT_LIMIT = 1000
MAX_FACTS = 40
"Teams refuses a message over about 28 KB: metadata beyond this is counted, not shown."


def teams_card(message: Message, prefix: str) -> dict[str, Any]:
    """The Adaptive Card (version 1.4): title, detail, metadata as a FactSet, and a footer."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(headline(prefix, message.title), TITLE_LIMIT),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        }
    ]
    if message.detail:
        body.append(
            {"type": "TextBlock", "text": truncate(message.detail, DETAIL_LIMIT), "wrap": True}
        )
    items = metadata_items(message.metadata)
    if items:
        facts = [
            {"title": truncate(key, FACT_LIMIT), "value": truncate(value, FACT_LIMIT)}
            for key, value in items[:MAX_FACTS]
        ]
        if len(items) > MAX_FACTS:
            facts.append({"title": "…", "value": f"{len(items) - MAX_FACTS} more not shown"})
        body.append({"type": "FactSet", "facts": facts})
    about = f"{message.priority} · {message.event_type} · {human_time(message.occurred_at)}"
    body.append(
        {"type": "TextBlock", "text": about, "isSubtle": True, "size": "Small", "wrap": True}
    )
    return {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body}


def teams_payload(message: Message, prefix: str) -> dict[str, Any]:
    """The Workflows message: one attachment holding the card."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": CARD_TYPE, "contentUrl": None, "content": teams_card(message, prefix)}
        ],
    }


class TeamsSender(Kind):
    kind = "TEAMS"
    label = "Teams"
    fields = (Field("webhookUrl", "webhook_url", private=True, hinted=True, check=fields.url),)
    required = ("webhook_url",)

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        return teams_payload(message, context.message_prefix)

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """One card with a container per event; split at about 28 KB."""
        return teams_digest_payloads(digest, context.message_prefix)

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
            return SendResult(ok=False, latency_ms=0.0, error="Teams webhook URL is not set")
        return await post(
            context, destination, url, content=json_body(rendered), headers=JSON_HEADERS
        )


# Digests: one card, the headline and period, then a container per event.

MESSAGE_BYTES_LIMIT = 27_000
"The posted JSON in bytes: Teams refuses a message over about 28 KB; this leaves headroom."


def teams_digest_payloads(digest: Digest, prefix: str) -> list[dict[str, Any]]:
    """The digest as consecutive Workflows messages of at most ``MESSAGE_BYTES_LIMIT``."""
    entries = [_digest_container(message) for message in digest.messages]

    def shell_cost(part: PartInfo) -> Cost:
        return (len(json_body(_digest_shell(digest, part, prefix, []))),)

    parts = lay_out(digest, entries, shell_cost, (MESSAGE_BYTES_LIMIT,))
    return [
        _digest_shell(digest, part, prefix, [entry.content for entry in chosen])
        for part, chosen in parts
    ]


def _digest_shell(
    digest: Digest, part: PartInfo, prefix: str, containers: list[dict[str, Any]]
) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(title_text(prefix, digest, part), TITLE_LIMIT),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
        {"type": "TextBlock", "text": period_text(digest, part), "isSubtle": True, "wrap": True},
        *containers,
    ]
    card = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


def _digest_container(message: Message) -> Entry:
    title, title_cut = event_title(message)
    detail, detail_cut = event_detail(message)
    facts = [
        {"title": "Priority", "value": message.priority},
        {"title": "Type", "value": truncate(message.event_type, FACT_LIMIT)},
        {"title": "Time", "value": human_time(message.occurred_at)},
    ]
    items: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    if detail:
        items.append({"type": "TextBlock", "text": detail, "wrap": True})
    container = {"type": "Container", "separator": True, "items": items}
    # One more byte for the comma that joins it to the body before it.
    return Entry(container, (len(json_body(container)) + 1,), shortened=title_cut or detail_cut)
