"""SendGrid's v3 Mail Send API: the e-mail kind's second provider (the kind is still EMAIL).

``POST {TOCSIN_SENDGRID_API_BASE}/v3/mail/send`` with ``Authorization: Bearer <key>`` and
the v3 body; SendGrid answers 202 Accepted for a message it queued. 401 and 403 refuse the
key (or what it may do), other 4xx a message SendGrid will never take: both are final and
carry SendGrid's ``errors[].message``. 429 and 5xx are retried, after Retry-After (or
SendGrid's own ``X-RateLimit-Reset``) when the answer names a wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import httpx

from tocsin.channels.base import CheckContext, Destination, ProblemSink, SendContext, SendResult
from tocsin.channels.http import (
    BODY_READ_LIMIT,
    JSON_HEADERS,
    RETRY_AFTER_CAP,
    describe_failure,
    exchange_within,
    json_body,
    judge_response,
)
from tocsin.channels.rendering import (
    response_snippet,
    scrub,
    secret_fragments,
    short_error,
    single_line,
    truncate,
)

MAIL_SEND_PATH = "/v3/mail/send"
KEY_STORED_AS = "sendgrid_api_key"
"The key's storage key among the e-mail channel's secrets."
_API_KEY = re.compile(r"^SG\.[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{16,128}\Z")
MAX_ERRORS = 3
ERROR_TEXT_LIMIT = 120


def check_api_key(problems: ProblemSink, path: str, value: str, context: CheckContext) -> str:
    """The check of ``sendgridApiKey``: SendGrid's ``SG.<id>.<secret>`` shape (never echoed)."""
    if not _API_KEY.match(value):
        problems.add(
            path,
            "INVALID_API_KEY",
            "A SendGrid API key looks like SG.xxxx.yyyy, as SendGrid shows it once when it "
            "is created (Settings, API Keys), with the Mail Send permission.",
        )
    return value


@dataclass(frozen=True, slots=True)
class Mail:
    """One message as the v3 body carries it."""

    recipients: tuple[str, ...]
    sender: str
    sender_name: str | None
    subject: str
    text: str
    html: str


def mail_send_body(mail: Mail) -> dict[str, Any]:
    """The v3 Mail Send body: one personalization to every recipient, a text and an HTML part."""
    sender = {"email": mail.sender}
    if mail.sender_name:
        sender["name"] = mail.sender_name
    return {
        "personalizations": [{"to": [{"email": address} for address in mail.recipients]}],
        "from": sender,
        "subject": mail.subject,
        "content": [
            {"type": "text/plain", "value": mail.text},
            {"type": "text/html", "value": mail.html},
        ],
    }


async def send_mail(context: SendContext, destination: Destination, mail: Mail) -> SendResult:
    """POST ``mail`` once within ``context.timeout`` and judge SendGrid's answer."""
    return await send_body(context, destination, mail_send_body(mail))


async def send_body(
    context: SendContext, destination: Destination, payload: Mapping[str, Any]
) -> SendResult:
    """POST a v3 body (``mail_send_body``) once within ``context.timeout`` and judge
    SendGrid's answer.

    Not ``channels/http.py``'s ``post``: that one judges without the answer's body, and
    SendGrid says what is wrong in it. The egress policy is applied the same way.
    """
    key = destination.secrets.get(KEY_STORED_AS)
    if not key:
        return SendResult(ok=False, latency_ms=0.0, error="SendGrid API key is not set")
    fragments = key_fragments(destination.secrets)
    url = context.sendgrid_api_base.rstrip("/") + MAIL_SEND_PATH
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        content = json_body(payload)
        reply, body = await exchange_within(context, url, content=content, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError, OSError) as exc:
        error, retryable = describe_failure(exc, _host_of(url), context.timeout)
        return SendResult(
            ok=False,
            latency_ms=_since(started),
            error=short_error(error, fragments),
            retryable=retryable,
        )
    return judge_answer(
        reply.status_code, reply.headers, body, latency_ms=_since(started), fragments=fragments
    )


def judge_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    latency_ms: float,
    fragments: Sequence[str] = (),
) -> SendResult:
    """2xx delivered; 401/403 the key refused, other 4xx final; 429 and 5xx retried."""
    result = judge_response(status, headers, body, latency_ms=latency_ms, fragments=fragments)
    if result.ok or status < 400:
        return result
    if status in {401, 403}:
        error = f"SendGrid refused the API key (HTTP {status})"
    elif result.retryable:
        error = f"HTTP {status}"  # as every kind says it: SendGrid is having trouble
    else:
        error = f"SendGrid refused the message (HTTP {status})"
    said = sendgrid_errors(body, fragments)
    retry_after = result.retry_after
    if retry_after is None and status == 429:
        retry_after = rate_limit_reset(headers.get("x-ratelimit-reset"))
    return dataclasses.replace(
        result,
        error=short_error(f"{error}: {said}" if said else error, fragments),
        retry_after=retry_after,
    )


def sendgrid_errors(body: bytes, fragments: Sequence[str]) -> str:
    """SendGrid's ``{"errors": [{"field", "message"}]}`` as one short line, scrubbed; the
    start of the answer when it is not that."""
    try:
        answer = json.loads(body)
    except ValueError:
        return response_snippet(body, fragments)
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(errors, list):
        return response_snippet(body, fragments)
    said = []
    for item in errors[:MAX_ERRORS]:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            continue
        text = truncate(single_line(scrub(item["message"], fragments)), ERROR_TEXT_LIMIT)
        field = item.get("field")
        if isinstance(field, str) and field:
            text = f"{truncate(single_line(scrub(field, fragments)), 60)}: {text}"
        said.append(text)
    if len(errors) > MAX_ERRORS:
        said.append(f"and {len(errors) - MAX_ERRORS} more")
    return "; ".join(said)


def rate_limit_reset(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), capped like Retry-After."""
    if not value or not value.strip().isdigit():
        return None
    seconds = int(value.strip()) - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def key_fragments(secrets: Mapping[str, Any]) -> list[str]:
    """The channel's secret fragments, and each part of the key (SendGrid may quote one)."""
    fragments = set(secret_fragments(secrets))
    key = secrets.get(KEY_STORED_AS)
    if isinstance(key, str):
        fragments.update(part for part in key.split(".") if len(part) >= 8)
    return sorted(fragments, key=len, reverse=True)


async def _read_head(reply: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(cast(AsyncGenerator[bytes], reply.aiter_bytes())) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size >= BODY_READ_LIMIT:
                break
    return b"".join(chunks)


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).netloc.decode("ascii", errors="replace") or "SendGrid"
    except (httpx.InvalidURL, TypeError):
        return "SendGrid"


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
