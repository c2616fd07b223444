"""The channel protocol: one async ``send`` per kind, returning a SendResult.

A sender never raises for a remote failure (refused connection, timeout, 4xx/5xx,
SMTP rejection): it answers a ``SendResult`` whose ``error`` is short and free of
secrets. Only programming errors escape as exceptions.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import httpx

    from tocsin.settings import IPNetwork


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery carries, independent of the channel kind."""

    delivery_id: str
    event_id: str
    event_type: str
    priority: str
    title: str
    detail: str | None
    metadata: Mapping[str, Any]
    occurred_at: datetime


class _Masked(dict[str, Any]):
    """A dict whose repr never shows its values (they are decrypted secrets)."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: '**********'" for k in self) + "}"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Destination:
    """A channel as a sender needs it. ``secrets`` holds plaintext and is masked in repr."""

    channel_id: str
    kind: str
    name: str
    config: Mapping[str, Any]
    secrets: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", _Masked(self.secrets))


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    latency_ms: float
    status_code: int | None = None
    error: str | None = None
    "Short, human-readable and free of secrets."
    retryable: bool = False
    "A later attempt may succeed (network error, timeout, 5xx, 408, 429, SMTP 4xx)."
    retry_after: float | None = None
    "Seconds the receiver asked us to wait (Retry-After), already capped."


@dataclass(frozen=True, slots=True)
class SendContext:
    """Shared, long-lived things every sender may use."""

    http: httpx.AsyncClient
    timeout: float
    message_prefix: str
    telegram_api_base: str
    allowed_networks: Sequence[IPNetwork] = ()
    ssl_context: ssl.SSLContext | None = None
    "Trust store for TLS (HTTPS and SMTP); None means the system's default."


class ChannelSender(abc.ABC):
    kind: ClassVar[str]

    @abc.abstractmethod
    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        """Deliver one message; answer the outcome, never raise for a remote failure."""
