"""Digests for the digest tests, and what a reader sees of each kind's parts: which events a
part holds, its headline (where "1/2" goes), all of its text, and every service limit."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from tests.channels.test_telegram import assert_valid_telegram_html
from tocsin.channels.base import Destination, Digest, Kind, Message
from tocsin.channels.discord import DiscordSender
from tocsin.channels.email import EmailSender
from tocsin.channels.http import json_body
from tocsin.channels.rendering import text_length
from tocsin.channels.slack import SlackSender
from tocsin.channels.teams import TeamsSender
from tocsin.channels.telegram import TelegramSender

PERIOD_START = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
PERIOD_END = PERIOD_START + timedelta(minutes=5)
EVENT = re.compile(r"ev-\d{3}")
"Every event's title starts with its own ev-NNN; no other text of a part holds one."
MARK = re.compile(r"\b\d+/\d+\b")
STYLES = ("plain", "long", "emoji", "markup")


def event_text(index: int, style: str) -> tuple[str, str | None]:
    """(title, detail) of event ``index`` in ``style``; "mixed" cycles through the styles."""
    if style == "mixed":
        style = STYLES[index % len(STYLES)]
    tag = f"ev-{index:03d}"
    if style == "long":
        return f"{tag} {'a very long title ' * 60}", "a long detail line " * 600
    if style == "emoji":
        return f"{tag} 🚨🔥 deploy 👩‍💻 failed {'🔥' * 200}", "🚨" * 3000
    if style == "markup":
        return f"{tag} <b>&amp; <!channel> @everyone *x*", "<script>&</script> *b* _i_ " * 10
    return f"{tag} dbt build failed", None if index % 5 == 0 else "1 of 24 models failed"


def make_digest(count: int, style: str = "plain", priority: str = "MEDIUM") -> Digest:
    messages = []
    for index in range(count):
        title, detail = event_text(index, style)
        messages.append(
            Message(
                delivery_id=f"dlv_{index:03d}",
                event_id=f"evt_{index:03d}",
                event_type="refresh_failed",
                priority=priority,
                title=title,
                detail=detail,
                metadata={"environment": "staging"},
                occurred_at=PERIOD_START + timedelta(seconds=index),
            )
        )
    return Digest("dlv_digest_1", "dgs_1", priority, PERIOD_START, PERIOD_END, messages)


def event_ids(count: int) -> list[str]:
    return [f"ev-{index:03d}" for index in range(count)]


@dataclass(frozen=True)
class Shape:
    """How to read one kind's parts (each part as the receiver got it, parsed)."""

    sender: Kind
    events: Callable[[Any], list[str]]
    headline: Callable[[Any], str]
    text: Callable[[Any], str]
    "Everything a reader sees of the part."
    check_limits: Callable[[Any], None]
    splits: bool = True


def _slack_events(part: dict[str, Any]) -> list[str]:
    blocks = part["blocks"]
    assert [b["type"] for b in blocks[:2]] == ["header", "context"]
    return [_first_event(b["text"]["text"]) for b in blocks[2:]]


def _slack_limits(part: dict[str, Any]) -> None:
    blocks = part["blocks"]
    assert len(blocks) <= 50
    assert text_length(blocks[0]["text"]["text"]) <= 150
    texts = [part["text"]]
    for block in blocks[1:]:
        inner = [block["text"]] if "text" in block else block["elements"]
        texts += [t["text"] for t in inner]
        assert all(text_length(t["text"]) <= 3000 for t in inner)
    assert sum(map(text_length, texts)) <= 40_000
    assert "<!channel>" not in json.dumps(part)  # escaped: no one is pinged


def _discord_limits(part: dict[str, Any]) -> None:
    embeds = part["embeds"]
    assert len(embeds) <= 10
    assert text_length(part["content"]) <= 2000
    total = 0
    for embed in embeds:
        title, description = embed["title"], embed.get("description", "")
        footer = embed["footer"]["text"]
        assert text_length(title) <= 256 and text_length(description) <= 4096
        assert text_length(footer) <= 2048
        total += text_length(title) + text_length(description) + text_length(footer)
    assert total <= 6000
    assert part["allowed_mentions"] == {"parse": []}


def _telegram_limits(part: dict[str, Any]) -> None:
    assert part["parse_mode"] == "HTML"
    assert_valid_telegram_html(part["text"])  # 4096 with the tags; after parsing, fewer
    assert text_length(telegram_visible(part["text"])) <= 4096


def telegram_visible(text: str) -> str:
    """What Telegram counts: the text after its HTML entities are parsed."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _teams_card(part: dict[str, Any]) -> dict[str, Any]:
    [attachment] = part["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    return card


def _teams_events(part: dict[str, Any]) -> list[str]:
    containers = _teams_card(part)["body"][2:]
    assert all(c["type"] == "Container" for c in containers)
    return [_first_event(c["items"][0]["text"]) for c in containers]


def _teams_limits(part: dict[str, Any]) -> None:
    assert len(json_body(part)) <= 28_000
    for container in _teams_card(part)["body"][2:]:
        assert [item["type"] for item in container["items"][:2]] == ["TextBlock", "FactSet"]


def _first_event(text: str) -> str:
    found = EVENT.search(text)
    assert found, text
    return found.group()


def mail_of(part: Any) -> EmailMessage:
    """An SMTP part as the receiver parses it."""
    if isinstance(part, EmailMessage):
        part = part.as_bytes()
    parsed = message_from_bytes(part, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def mail_parts(part: Any) -> tuple[str, str, str]:
    """(subject, text, html) of an SMTP message or a SendGrid v3 body."""
    if isinstance(part, dict):
        [text, html_part] = part["content"]
        return part["subject"], text["value"], html_part["value"]
    mail = mail_of(part)
    text_body, html_body = mail.get_body(("plain",)), mail.get_body(("html",))
    assert isinstance(text_body, EmailMessage) and isinstance(html_body, EmailMessage)
    return str(mail["Subject"]), text_body.get_content(), html_body.get_content()


def _mail_events(part: Any) -> list[str]:
    _, text, html_part = mail_parts(part)
    found = EVENT.findall(text)
    assert EVENT.findall(html_part) == found
    return found


def _mail_limits(part: Any) -> None:
    subject, _, html_part = mail_parts(part)
    assert "\n" not in subject and len(subject) <= 250
    assert "<script>" not in html_part and "<!channel>" not in html_part


def _json_text(part: Any) -> str:
    return json.dumps(part, ensure_ascii=False)


SHAPES: dict[str, Shape] = {
    "slack": Shape(
        SlackSender(),
        _slack_events,
        lambda part: f"{part['blocks'][0]['text']['text']} | {part['text']}",
        _json_text,
        _slack_limits,
    ),
    "discord": Shape(
        DiscordSender(),
        lambda part: [_first_event(embed["title"]) for embed in part["embeds"]],
        lambda part: part["content"].splitlines()[0],
        _json_text,
        _discord_limits,
    ),
    "telegram": Shape(
        TelegramSender(),
        lambda part: EVENT.findall(part["text"]),
        lambda part: part["text"].splitlines()[0],
        lambda part: html.unescape(part["text"]),
        _telegram_limits,
    ),
    "teams": Shape(
        TeamsSender(),
        _teams_events,
        lambda part: _teams_card(part)["body"][0]["text"],
        _json_text,
        _teams_limits,
    ),
    "email": Shape(
        EmailSender(),
        _mail_events,
        lambda part: mail_parts(part)[0],
        lambda part: "\n".join(mail_parts(part)),
        _mail_limits,
        splits=False,
    ),
}
SHAPES["sendgrid"] = SHAPES["email"]


def render_destination(name: str, **secrets: Any) -> Destination:
    """A channel of each shape that renders (nothing is sent to it)."""
    kind = {"sendgrid": "EMAIL"}.get(name, name.upper())
    config: dict[str, Any] = {
        "telegram": {"chat_id": "-1001234567890"},
        "email": {
            "to": ["ops@example.com"],
            "smtp_host": "localhost",
            "from_address": "tocsin@example.com",
        },
        "sendgrid": {
            "provider": "SENDGRID",
            "to": ["ops@example.com"],
            "from_address": "tocsin@example.com",
        },
    }.get(name, {})
    return Destination("chn_1", kind, f"test {name}", config, secrets)
