"""Telegram: ``sendMessage`` of the Bot API, as HTML of at most 4096 characters."""

from __future__ import annotations

import html
import re
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
    event_about,
    event_detail,
    event_title,
    lay_out,
    period_text,
    title_text,
)
from tocsin.channels.http import JSON_HEADERS, json_body, post
from tocsin.channels.rendering import (
    fit_escaped,
    headline,
    human_time,
    items_that_fit,
    metadata_items,
    text_length,
)

TEXT_LIMIT = 4096
_BOT_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
DETAIL_GUARANTEE = 2000
"Characters of the detail kept even when metadata has to make room for it."


def escape_html(text: str) -> str:
    return html.escape(text, quote=False)


def telegram_text(message: Message, prefix: str) -> str:
    """The message as Telegram HTML: headline, detail, metadata, then priority and type."""
    head = f"<b>{fit_escaped(headline(prefix, message.title), 512, escape_html)}</b>"
    about = f"{message.priority} · {message.event_type} · {human_time(message.occurred_at)}"
    foot = f"<i>{fit_escaped(about, 256, escape_html)}</i>"
    lines = [
        f"<b>{fit_escaped(key, 128, escape_html)}:</b> {fit_escaped(value, 512, escape_html)}"
        for key, value in metadata_items(message.metadata)
    ]
    budget = TEXT_LIMIT - text_length(head) - text_length(foot) - 1
    detail = message.detail or ""
    reserved = min(text_length(escape_html(detail)) + 1, DETAIL_GUARANTEE) if detail else 0
    kept = items_that_fit(
        [text_length(line) + 1 for line in lines],
        budget - reserved - 1,
        lambda dropped: text_length(_more_line(dropped)) + 1,
    )
    meta = lines[:kept] + ([_more_line(len(lines) - kept)] if kept < len(lines) else [])
    meta_size = sum(text_length(line) + 1 for line in meta) + 1 if meta else 0

    sections = [head]
    if detail:
        sections.append(fit_escaped(detail, budget - meta_size - 1, escape_html))
    if meta:
        sections.append("\n" + "\n".join(meta))
    sections.append(foot)
    return "\n".join(sections)


def _more_line(dropped: int) -> str:
    return f"<i>… {dropped} more metadata fields not shown</i>"


def telegram_payload(message: Message, prefix: str, chat_id: str) -> dict[str, Any]:
    return {"chat_id": chat_id, "text": telegram_text(message, prefix), "parse_mode": "HTML"}


class TelegramSender(Kind):
    kind = "TELEGRAM"
    label = "Telegram"
    fields = (
        Field("botToken", "bot_token", private=True, check=fields.bot_token),
        Field("chatId", "chat_id", check=fields.chat_id),
    )
    required = ("bot_token", "chat_id")

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        chat_id = str(destination.config.get("chat_id"))
        return telegram_payload(message, context.message_prefix, chat_id)

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """One message listing every event; split at 4 096 characters."""
        chat_id = str(destination.config.get("chat_id"))
        return [
            {"chat_id": chat_id, "text": text, "parse_mode": "HTML"}
            for text in telegram_digest_texts(digest, context.message_prefix)
        ]

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        return await self.send_rendered(
            destination, self.render(destination, message, context), context
        )

    async def send_rendered(
        self, destination: Destination, rendered: Any, context: SendContext
    ) -> SendResult:
        token = destination.secrets.get("bot_token")
        chat_id = destination.config.get("chat_id")
        if not token or not chat_id:
            missing = "bot token" if not token else "chat ID"
            return SendResult(ok=False, latency_ms=0.0, error=f"Telegram {missing} is not set")
        if not _BOT_TOKEN.fullmatch(str(token)):
            return SendResult(ok=False, latency_ms=0.0, error="Telegram bot token is malformed")
        url = f"{context.telegram_api_base.rstrip('/')}/bot{token}/sendMessage"
        return await post(
            context, destination, url, content=json_body(rendered), headers=JSON_HEADERS
        )


# Digests: the headline and period, then each event's title, about line and detail.

_GAP = "\n\n"


def telegram_digest_texts(digest: Digest, prefix: str) -> list[str]:
    """The digest as consecutive HTML texts of at most 4 096 characters (measured with the
    tags, so the text Telegram counts after parsing them is shorter still)."""
    entries = [_digest_entry(message) for message in digest.messages]

    def shell_cost(part: PartInfo) -> Cost:
        return (text_length(_digest_head(digest, part, prefix)),)

    parts = lay_out(digest, entries, shell_cost, (TEXT_LIMIT,))
    return [
        _GAP.join([_digest_head(digest, part, prefix), *(entry.content for entry in chosen)])
        for part, chosen in parts
    ]


def _digest_head(digest: Digest, part: PartInfo, prefix: str) -> str:
    title = fit_escaped(title_text(prefix, digest, part), 512, escape_html)
    period = fit_escaped(period_text(digest, part), 512, escape_html)
    return f"<b>{title}</b>\n<i>{period}</i>"


def _digest_entry(message: Message) -> Entry:
    title, title_cut = event_title(message, escape=escape_html)
    detail, detail_cut = event_detail(message, escape=escape_html)
    about = fit_escaped(event_about(message), 300, escape_html)
    text = f"<b>{title}</b>\n<i>{about}</i>" + (f"\n{detail}" if detail else "")
    return Entry(text, (text_length(_GAP) + text_length(text),), shortened=title_cut or detail_cut)
