"""Slack: Block Kit messages through an incoming webhook, or through a bot token and
``chat.postMessage`` of the Web API (Slack-compatible receivers such as Mattermost take the
webhook JSON).

Slack's Web API answers HTTP 200 for most failures, with ``{"ok": false, "error": E}``:
``judge_api_answer`` reads that. The errors in ``PERMANENT_ERRORS`` fail the delivery at
once with E. Every other E is retried like a 5xx: the contract names the permanent ones,
Slack adds error codes over time, and an alerting service had rather spend a few bounded
retries on an error it does not know than drop the alert on a passing one
(``internal_error``, ``fatal_error``, ``service_unavailable``, ``team_added_to_org``,
``message_limit_exceeded`` are such). ``ratelimited`` comes as HTTP 429 with Retry-After.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tocsin.channels import fields
from tocsin.channels.base import (
    CheckContext,
    Destination,
    Digest,
    Field,
    Kind,
    Message,
    ProblemSink,
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
from tocsin.channels.http import JSON_HEADERS, json_body, judge_response, parse_retry_after, post
from tocsin.channels.rendering import (
    fallback_text,
    fit_escaped,
    human_time,
    metadata_items,
    short_error,
    text_length,
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


PERMANENT_ERRORS = frozenset(
    {
        # named by the contract
        "channel_not_found",
        "not_in_channel",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "is_archived",
        # the token, the app or the workspace refuses; only a person can change that
        "token_expired",
        "missing_scope",
        "no_permission",
        "access_denied",
        "not_allowed_token_type",
        "ekm_access_denied",
        "org_login_required",
        "team_access_not_granted",
        "enterprise_is_restricted",
        "two_factor_setup_required",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "messages_tab_disabled",
        "method_deprecated",
        "deprecated_endpoint",
        # the message itself is refused: the same message would be refused again
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "too_many_attachments",
        "invalid_attachments",
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_array_arg",
        "invalid_charset",
        "invalid_form_data",
        "invalid_json",
        "json_not_object",
        "invalid_post_type",
        "missing_post_type",
    }
)
_API_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
_BOT_TOKEN = re.compile(r"^xoxb-\d{1,20}-[A-Za-z0-9-]{8,230}\Z")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,20}\Z")
_OK_HEAD = re.compile(rb'^\s*\{\s*"ok"\s*:\s*(true|false)')
_ERROR_IN_HEAD = re.compile(rb'"error"\s*:\s*"([^"\\]{1,200})"')
MAX_CHANNEL_NAME = 80


def check_bot_token(problems: ProblemSink, path: str, value: str, context: CheckContext) -> str:
    if not _BOT_TOKEN.match(value):
        problems.add(
            path,
            "INVALID_BOT_TOKEN",
            "A Slack bot token starts with xoxb- followed by numbers and letters: the Bot User "
            "OAuth Token on your Slack app's OAuth & Permissions page.",
        )
    return value


def is_channel_name(text: str) -> bool:
    """``#name`` as Slack allows it: lower-case letters, digits, - and _, at most 80."""
    name = text.removeprefix("#")
    return (
        text.startswith("#")
        and 0 < len(name) <= MAX_CHANNEL_NAME
        and all(c in "-_" or "0" <= c <= "9" or (c.isalpha() and c.lower() == c) for c in name)
    )


def check_channel(problems: ProblemSink, path: str, value: str, context: CheckContext) -> str:
    if not (_CHANNEL_ID.match(value) or is_channel_name(value)):
        problems.add(
            path,
            "INVALID_CHANNEL",
            "Use a channel ID such as C0123ABCD (or G…, D…), or a name such as #data-alerts: "
            "lower-case letters, digits, - and _, at most 80 characters.",
        )
    return value


def judge_api_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    latency_ms: float,
    fragments: Sequence[str] = (),
) -> SendResult:
    """A Web API answer: HTTP errors as any HTTP answer; a 2xx by its ``ok`` and ``error``."""
    if not 200 <= status < 300:
        return judge_response(status, headers, body, latency_ms=latency_ms, fragments=fragments)
    ok, error = _read_answer(body)
    if ok:
        return SendResult(ok=True, latency_ms=latency_ms, status_code=status)
    permanent = error.split(" ", 1)[0] in PERMANENT_ERRORS
    return SendResult(
        ok=False,
        latency_ms=latency_ms,
        status_code=status,
        error=short_error(error, fragments),
        retryable=not permanent,
        retry_after=None if permanent else parse_retry_after(headers.get("retry-after")),
    )


def _read_answer(body: bytes) -> tuple[bool, str]:
    """(ok, error) of an answer; only its head was read when it is long, and Slack puts
    ``ok`` first, so a long answer to a posted message still reads as delivered."""
    try:
        answer = json.loads(body)
    except ValueError:
        head = _OK_HEAD.match(body)
        if head is None:
            return False, "unexpected answer from Slack (not JSON)"
        if head.group(1) == b"true":
            return True, ""
        found = _ERROR_IN_HEAD.search(body)
        return False, found.group(1).decode(errors="replace") if found else "unknown_error"
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return False, "unexpected answer from Slack"
    if answer["ok"]:
        return True, ""
    error = answer.get("error")
    error = error if isinstance(error, str) and error else "unknown_error"
    needed = answer.get("needed")
    if isinstance(needed, str) and needed:
        error = f"{error} (needed: {needed})"
    return False, error


class SlackSender(Kind):
    kind = "SLACK"
    label = "Slack"
    fields = (
        Field("webhookUrl", "webhook_url", private=True, hinted=True, check=fields.url),
        Field("botToken", "bot_token", private=True, check=check_bot_token),
        Field("channel", "channel", check=check_channel),
    )
    required = ("webhook_url",)
    alternatives = (("bot_token", "channel"),)

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        """The webhook's or chat.postMessage's JSON: text and blocks, and the channel if set."""
        return _addressed(destination, slack_payload(message, context.message_prefix))

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """A header, the period and a section per event; split at 50 blocks."""
        return [
            _addressed(destination, payload)
            for payload in slack_digest_payloads(digest, context.message_prefix)
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
        """Through chat.postMessage when a bot token and a channel are set (they win over
        a webhook URL), else through the webhook URL."""
        token = destination.secrets.get("bot_token")
        channel = destination.config.get("channel")
        url = destination.secrets.get("webhook_url")
        body = json_body(rendered)
        if token and channel:
            if not _BOT_TOKEN.match(str(token)):
                return SendResult(ok=False, latency_ms=0.0, error="Slack bot token is malformed")
            api = f"{context.slack_api_base.rstrip('/')}/chat.postMessage"
            headers = {**_API_HEADERS, "Authorization": f"Bearer {token}"}
            return await post(
                context, destination, api, content=body, headers=headers, judge=judge_api_answer
            )
        if url:
            return await post(context, destination, url, content=body, headers=JSON_HEADERS)
        if token:
            error = "Slack channel is not set (a bot token needs one)"
            return SendResult(ok=False, latency_ms=0.0, error=error)
        return SendResult(ok=False, latency_ms=0.0, error="Slack webhook URL is not set")


def _addressed(destination: Destination, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with the channel's ``channel``, when one is set."""
    channel = destination.config.get("channel")
    return {"channel": channel, **payload} if channel else payload


# Digests: a header, the period, then one section per event.

MAX_BLOCKS = 50
MESSAGE_TEXT_LIMIT = 40_000
"All the text of one message: Slack cuts a longer ``text``; kept for the blocks as well."


def slack_digest_payloads(digest: Digest, prefix: str) -> list[dict[str, Any]]:
    """The digest as consecutive messages of at most 50 blocks and 40 000 characters."""
    entries = [_digest_entry(message) for message in digest.messages]

    def shell_cost(part: PartInfo) -> Cost:
        shell = _digest_shell(digest, part, prefix)
        return len(shell["blocks"]), _text_size(shell)

    parts = lay_out(digest, entries, shell_cost, (MAX_BLOCKS, MESSAGE_TEXT_LIMIT))
    payloads = []
    for part, chosen in parts:
        payload = _digest_shell(digest, part, prefix)
        payload["blocks"] += [entry.content for entry in chosen]
        payloads.append(payload)
    return payloads


def _digest_shell(digest: Digest, part: PartInfo, prefix: str) -> dict[str, Any]:
    title = title_text(prefix, digest, part)
    period = period_text(digest, part)
    header = truncate(title, HEADER_LIMIT)
    context = fit_escaped(period, SECTION_LIMIT, escape_mrkdwn)
    return {
        "text": fit_escaped(f"{title} · {period}", TEXT_LIMIT, escape_mrkdwn),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def _digest_entry(message: Message) -> Entry:
    title, title_cut = event_title(message, escape=escape_mrkdwn)
    detail, detail_cut = event_detail(message, escape=escape_mrkdwn)
    about = fit_escaped(event_about(message), 300, escape_mrkdwn)
    text = f"*{title}*\n{about}" + (f"\n{detail}" if detail else "")
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return Entry(section, (1, text_length(text)), shortened=title_cut or detail_cut)


def _text_size(payload: dict[str, Any]) -> int:
    """The characters of ``text`` and of every block's text."""
    size = text_length(payload["text"])
    for block in payload["blocks"]:
        texts = [block.get("text"), *block.get("elements", [])]
        size += sum(text_length(t["text"]) for t in texts if t)
    return size
