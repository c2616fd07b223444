"""Microsoft Teams: an Adaptive Card posted to a Workflows webhook URL.

Workflows (Power Automate) answers 202 Accepted, sometimes 200, for a message it took;
429 with Retry-After when throttled; other 4xx are final. ``channels/http.py`` judges
those like any other HTTP answer.
"""

from __future__ import annotations

from typing import Any

from tocsin.channels import fields
from tocsin.channels.base import Destination, Field, Kind, Message, SendContext, SendResult
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

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        url = destination.secrets.get("webhook_url")
        if not url:
            return SendResult(ok=False, latency_ms=0.0, error="Teams webhook URL is not set")
        body = json_body(self.render(destination, message, context))
        return await post(context, destination, url, content=body, headers=JSON_HEADERS)
