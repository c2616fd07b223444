"""Generic webhooks: the contract's JSON body, Standard Webhooks signing when a secret is set.

A digest is one request (never split) whose body holds the single-event body of each event
(CONTRACT section 7), signed like any other with the digest's delivery id."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from tocsin import __version__
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
from tocsin.channels.http import post
from tocsin.channels.rendering import as_utc, truncate
from tocsin.channels.signing import signature_headers

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")
_OWN_HEADERS = {"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
NOT_JSON = "the event's metadata holds a number JSON cannot carry (NaN or Infinity)"


def webhook_payload(message: Message, *, sent_at: datetime) -> dict[str, Any]:
    """The body receivers parse; field names are part of the public contract."""
    return {
        "id": message.delivery_id,
        "event_id": message.event_id,
        "event_type": message.event_type,
        "priority": message.priority,
        "title": message.title,
        "detail": message.detail,
        "metadata": dict(message.metadata),
        "occurred_at": as_utc(message.occurred_at).isoformat(),
        "sent_at": as_utc(sent_at).isoformat(),
        "tocsin_version": __version__,
    }


def digest_payload(digest: Digest, *, sent_at: datetime) -> dict[str, Any]:
    """The digest body: the contract's fields, plus which digest and priority it is."""
    return {
        "id": digest.delivery_id,
        "digest": True,
        "digest_id": digest.digest_id,
        "priority": digest.priority,
        "period_start": as_utc(digest.period_start).isoformat(),
        "period_end": as_utc(digest.period_end).isoformat(),
        "events": [webhook_payload(message, sent_at=sent_at) for message in digest.messages],
        "sent_at": as_utc(sent_at).isoformat(),
        "tocsin_version": __version__,
    }


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the exact bytes sent and signed; ValueError for NaN or Infinity,
    which receivers' JSON parsers refuse."""
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
    ).encode()


def custom_headers(headers: Mapping[str, Any]) -> httpx.Headers:
    """The channel's own headers; raises ValueError naming (only) a header that can't be sent."""
    checked = httpx.Headers()
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"custom header name {truncate(str(name), 40)!r} is not valid")
        if name.lower() in _OWN_HEADERS:
            continue  # Tocsin sets these itself; a stored override would break receivers.
        if not isinstance(value, str) or _BAD_HEADER_VALUE.search(value):
            raise ValueError(f"custom header {name} has a value that can't be sent")
        checked[name] = value
    return checked


def _header_names(headers: Mapping[str, str] | None) -> dict[str, Any]:
    return {"header_names": sorted(headers or {})}


def _audited_headers(headers: Any) -> dict[str, Any]:
    return {"names": sorted(headers) if isinstance(headers, dict) else [], "values": "set"}


class WebhookSender(Kind):
    kind = "WEBHOOK"
    label = "Webhook"
    fields = (
        Field("url", "url", private=True, hinted=True, check=fields.url),
        Field("signingSecret", "signing_secret", private=True, check=fields.signing_secret),
        Field(
            "headers",
            "headers",
            private=True,
            check=fields.headers,
            shows=_header_names,
            audits=_audited_headers,
        ),
    )
    required = ("url",)

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        return webhook_payload(message, sent_at=datetime.now(UTC))

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        # One part: a receiver gets the whole digest or, on failure, all of it again.
        return [digest_payload(digest, sent_at=datetime.now(UTC))]

    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        return await self.send_rendered(
            destination, self.render(destination, message, context), context
        )

    async def send_rendered(
        self, destination: Destination, rendered: Any, context: SendContext
    ) -> SendResult:
        url = destination.secrets.get("url")
        if not url:
            return SendResult(ok=False, latency_ms=0.0, error="webhook URL is not set")
        try:
            body = webhook_body(rendered)
        except ValueError:  # NaN or Infinity: the body would not be JSON
            return SendResult(ok=False, latency_ms=0.0, error=NOT_JSON)
        delivery_id = str(rendered["id"])
        try:
            custom = destination.secrets.get("headers")
            # Without headers of its own a channel's are a plain dict: httpx.Headers (for
            # names that differ only in case) cost more than the rest of this method.
            headers: dict[str, str] | httpx.Headers = custom_headers(custom) if custom else {}
            headers["Content-Type"] = "application/json"
            # The delivery id, the same on every retry, lets any receiver drop repeats
            # (CONTRACT section 4), signed or not; a signing secret adds the signature.
            headers["webhook-id"] = delivery_id
            secret = destination.secrets.get("signing_secret")
            if secret:
                headers.update(signature_headers(secret, delivery_id, body))
        except ValueError as exc:  # InvalidSigningSecret included; messages carry no secret
            return SendResult(ok=False, latency_ms=0.0, error=str(exc))
        return await post(context, destination, url, content=body, headers=headers)
