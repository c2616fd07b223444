"""The domain's enumerations; the GraphQL layer exposes them as they are."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFO = "INFO"

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    Priority.INFO: 0,
    Priority.LOW: 1,
    Priority.MEDIUM: 2,
    Priority.HIGH: 3,
    Priority.CRITICAL: 4,
}


class DeliveryMode(StrEnum):
    REALTIME = "REALTIME"
    DIGEST = "DIGEST"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    RETRYING = "RETRYING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"
    BATCHED = "BATCHED"
    "Held in its channel's open digest; never claimed itself (``storage/digests.py``)."


class DigestStatus(StrEnum):
    """A digest collects events while OPEN; closed, its own delivery carries them."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"


class RouteOutcome(StrEnum):
    """What routing does with one event for one channel (``resolvers/routing.py``)."""

    SEND = "SEND"
    "A delivery now."
    DIGEST = "DIGEST"
    "Held for the channel's next digest of the event's priority."
    SUPPRESSED = "SUPPRESSED"
    "Recorded as a SUPPRESSED delivery with the reason, not sent (muted, deduplicated)."
    SKIPPED = "SKIPPED"
    "Not for this channel: no row at all."


class SmtpSecurity(StrEnum):
    STARTTLS = "STARTTLS"
    TLS = "TLS"
    NONE = "NONE"


class Role(StrEnum):
    VIEWER = "VIEWER"
    EDITOR = "EDITOR"
    ADMIN = "ADMIN"
    EMITTER = "EMITTER"


class EmailProvider(StrEnum):
    """How an e-mail channel sends: through its SMTP server, or SendGrid's Mail Send API."""

    SMTP = "SMTP"
    SENDGRID = "SENDGRID"
