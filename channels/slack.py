"""Slack (and Slack-compatible receivers such as Mattermost): incoming-webhook JSON."""

from __future__ import annotations

from typing import Any

from tocsin.channels import fields
from tocsin.channels.base import Destination, Field, Kind, Message, SendContext, SendResult
from tocsin.channels.http import JSON_HEADERS, json_body, post
from tocsin.channels.rendering import (
    fallback_text,
    fit_escaped,
    human_time,
    metadata_items,
    truncate,
)

TEXT_LIMIT = 3000
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELD_NAME_LIMIT = 200
FIELDS_PER_SECTION = 10
MAX_FIELDS = 40


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters; also what keeps ``<!channel>`` from pinging anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message, prefix: str) -> dict[str, Any]:
    """``text`` (the notification fallback) and Block Kit ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(message.title, HEADER_LIMIT) or "(no title)",
                "emoji": True,
            },
        }
    ]
    if message.detail:
        detail = fit_escaped(message.detail, SECTION_LIMIT, escape_mrkdwn)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": detail}})

    fields = [_field(key, value) for key, value in metadata_items(message.metadata)]
    shown = min(len(fields), MAX_FIELDS)
    for start in range(0, shown, FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})

    context = (
        f"*{escape_mrkdwn(message.priority)}*"
        f" · `{fit_escaped(message.event_type, 200, escape_mrkdwn)}`"
        f" · {human_time(message.occurred_at)}"
    )
    if len(fields) > shown:
        context += f" · {len(fields) - shown} more metadata fields not shown"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})

    return {
        "text": fit_escaped(fallback_text(prefix, message), TEXT_LIMIT, escape_mrkdwn),
        "blocks": blocks,
    }


def _field(key: str, value: str) -> dict[str, str]:
    name = fit_escaped(key, FIELD_NAME_LIMIT, escape_mrkdwn)
    text = fit_escaped(value, FIELD_LIMIT - len(name) - 3, escape_mrkdwn)
    return {"type": "mrkdwn", "text": f"*{name}*\n{text}"}


class SlackSender(Kind):
    kind = "SLACK"
    label = "Slack"
    fields = (Field("webhookUrl", "webhook_url", private=True, hinted=True, check=fields.url),)
    required = ("webhook_url",)

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        return slack_payload(message, context.message_prefix)

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        url = destination.secrets.get("webhook_url")
        if not url:
            return SendResult(ok=False, latency_ms=0.0, error="Slack webhook URL is not set")
        body = json_body(self.render(destination, message, context))
        return await post(context, destination, url, content=body, headers=JSON_HEADERS)
