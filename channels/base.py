"""The channel kind protocol: what a kind stores, and one async ``send``.

A kind (``channels/<kind>.py``) is a ``Kind`` subclass that says what it is
as data: its ``fields`` (input name, storage key, secret or not, default, URL or
not, validator), what makes it ``required`` to be configured, its ``label``, and
how it renders a message. ``channels/registry.py`` lists the kinds; nothing else
in Tocsin names one.

A sender never raises for a remote failure (refused connection, timeout, 4xx/5xx,
SMTP rejection): it answers a ``SendResult`` whose ``error`` is short and free of
secrets. Only programming errors escape as exceptions.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from tocsin.channels.rendering import secret_fragments, short_error

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


@dataclass(frozen=True, slots=True)
class Digest:
    """A DIGEST channel's batch: the events of one priority in one period, oldest first."""

    delivery_id: str
    "The digest's own delivery (its ``webhook-id``, the same on every retry)."
    digest_id: str
    priority: str
    period_start: datetime
    period_end: datetime
    messages: Sequence[Message]


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
class Answer:
    """What a receiver answered a post: its status and headers (case-insensitive)."""

    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    "May carry what a log must not (Set-Cookie, a token echoed back)."


class HttpPoster(Protocol):
    """How senders post (``channels/http.GuardedClient``, made by ``build_http_client``)."""

    async def exchange(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str] | httpx.Headers,
        allowed: Sequence[IPNetwork],
        seconds: float | None = None,
    ) -> tuple[Answer, bytes]: ...


@dataclass(frozen=True, slots=True)
class SendContext:
    """Shared, long-lived things every sender may use."""

    http: HttpPoster
    "``channels/http.build_http_client``: posts through the destination guard."
    timeout: float
    message_prefix: str
    telegram_api_base: str
    sendgrid_api_base: str = "https://api.sendgrid.com"
    "TOCSIN_SENDGRID_API_BASE: where the e-mail kind's SendGrid provider posts."
    allowed_networks: Sequence[IPNetwork] = ()
    ssl_context: ssl.SSLContext | None = None
    "Trust store for TLS (HTTPS and SMTP); None means the system's default."
    slack_api_base: str = "https://slack.com/api"
    "Where ``chat.postMessage`` is (TOCSIN_SLACK_API_BASE)."


class ProblemSink(Protocol):
    """Where a validator reports a bad input (the resolvers pass their ``Problems``)."""

    def add(self, path: list[str] | str | None, code: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a field's validator may consult besides the value."""

    allowed_networks: Sequence[IPNetwork] = ()
    stored: Any = field(default=None, repr=False)
    "The field's stored value (a secret's plaintext), for inputs that amend it."


Check = Callable[[ProblemSink, str, Any, CheckContext], Any]
"(problems, input name, value, context) -> the value to store; adds problems when bad."


@dataclass(frozen=True, slots=True)
class Field:
    """One input field of a kind, as the save input spells it and as it is stored."""

    input: str
    "The GraphQL input's name (camelCase): also the path of its UserErrors."
    stored_as: str
    "Its key in the channel's encrypted secrets when ``private``, else in its plain config."
    private: bool = False
    "A secret: encrypted at rest, write-only (the schema shows only ``<stored_as>_set``)."
    default: Any = None
    "Plain config only: the value of a new channel, and what null resets it to."
    hinted: bool = False
    "A secret URL: the schema also shows its hint (scheme://host/…/last4)."
    check: Check | None = None
    strip: bool = True
    "Strings are stripped before they are checked (a password is taken as typed)."
    shows: Callable[[Any], dict[str, Any]] | None = None
    "A secret's public part, kept in the plain config (the names of custom headers)."
    audits: Callable[[Any], Any] | None = None
    "What the audit log records when a secret is set (default: the word set)."


def url_hint(url: str) -> str:
    """scheme://host/…/last4 — enough to recognise a URL, not enough to use it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    return f"{parts.scheme}://{host}/…/{url[-4:]}"


class Kind(abc.ABC):
    """A kind of channel: its fields as data, and one abstract ``send``."""

    kind: ClassVar[str]
    "The ``ChannelKind`` value (upper case), the registry's key."
    label: ClassVar[str] = ""
    "What people call it: a new channel's name, and ``save<Label>Channel``."
    fields: ClassVar[tuple[Field, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    "Storage keys that must all be set for the channel to be ``configured``."
    alternatives: ClassVar[tuple[tuple[str, ...], ...]] = ()
    "Other sets of storage keys, each of which, all set, configures the channel as well."

    def config_defaults(self) -> dict[str, Any]:
        """The plain config of a new channel."""
        defaults: dict[str, Any] = {}
        for item in self.fields:
            if not item.private:
                defaults[item.stored_as] = item.default
            elif item.shows is not None:
                defaults.update(item.shows(None))
        return defaults

    def is_configured(self, config: Mapping[str, Any], secrets_set: Collection[str]) -> bool:
        """Every field in ``required``, or in one of the ``alternatives``, is stored (a secret
        is set, a config value not empty)."""
        secret_keys = {item.stored_as for item in self.fields if item.private}
        return any(
            all(key in secrets_set if key in secret_keys else bool(config.get(key)) for key in keys)
            for keys in (self.required, *self.alternatives)
        )

    def hint(self, item: Field, value: Any) -> str | None:
        """What the schema may show of a secret: a URL's hint; nothing of the others."""
        return url_hint(value) if item.hinted and isinstance(value, str) else None

    def check_channel(  # noqa: B027 (a hook: most kinds check nothing across fields)
        self,
        problems: ProblemSink,
        config: Mapping[str, Any],
        secrets_set: Collection[str],
        *,
        changed: Collection[str],
        allowed_networks: Sequence[IPNetwork],
    ) -> None:
        """Checks across fields, after each field passed its own (none by default)."""

    def render(self, destination: Destination, message: Message, context: SendContext) -> Any:
        """One message in this kind's wire format (what ``send`` sends)."""
        raise NotImplementedError(f"{self.kind} does not render messages")

    def render_digest(
        self, destination: Destination, digest: Digest, context: SendContext
    ) -> list[Any]:
        """The digest (CONTRACT section 7) as consecutive messages in this kind's wire
        format, each within the service's limits and, when there are several, marked
        "1/2", "2/2"; every event in exactly one of them, none cut silently."""
        raise NotImplementedError(f"{self.kind} does not render digests yet")

    async def send_rendered(
        self, destination: Destination, rendered: Any, context: SendContext
    ) -> SendResult:
        """Send one message ``render`` or ``render_digest`` built; never raise for a
        remote failure."""
        raise NotImplementedError(f"{self.kind} does not send rendered messages yet")

    async def send_digest(
        self, destination: Destination, digest: Digest, context: SendContext, *, sent: int = 0
    ) -> tuple[SendResult, int]:
        """Send the digest's parts from part ``sent`` on (those before went out on an
        earlier attempt), stopping at the first failure. Answers the last part's result
        and how many parts have now gone out in all.

        A ``render_digest`` that raises ValueError (a channel that can't carry the digest,
        such as an e-mail channel without a recipient) fails the attempt with its message."""
        try:
            parts = self.render_digest(destination, digest, context)
        except ValueError as exc:
            error = short_error(str(exc), secret_fragments(destination.secrets))
            return SendResult(ok=False, latency_ms=0.0, error=error), sent
        result = SendResult(ok=True, latency_ms=0.0)
        latency = 0.0
        for index in range(sent, len(parts)):
            result = await self.send_rendered(destination, parts[index], context)
            latency += result.latency_ms
            if not result.ok:
                return result, index
        done = max(sent, len(parts))
        return SendResult(ok=True, latency_ms=latency, status_code=result.status_code), done

    @abc.abstractmethod
    async def send(
        self, destination: Destination, message: Message, context: SendContext
    ) -> SendResult:
        """Deliver one message; answer the outcome, never raise for a remote failure."""


ChannelSender = Kind
"The name senders had before a kind described itself; the same class."
