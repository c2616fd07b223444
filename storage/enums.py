"""The domain's enumerations; the GraphQL layer exposes them as they are."""

from __future__ import annotations

from enum import Enum, StrEnum


class ChannelKind(Enum):
    SLACK = "SLACK"
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"
    DISCORD = "DISCORD"
    TELEGRAM = "TELEGRAM"
    TEAMS = "TEAMS"


class Priority(Enum):
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


class DeliveryMode(Enum):
    REALTIME = "REALTIME"
    DIGEST = "DIGEST"


class DeliveryStatus(Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    RETRYING = "RETRYING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"


class SmtpSecurity(Enum):
    STARTTLS = "STARTTLS"
    TLS = "TLS"
    NONE = "NONE"


class Role(Enum):
    VIEWER = "VIEWER"
    EDITOR = "EDITOR"
    ADMIN = "ADMIN"
    EMITTER = "EMITTER"


class EmailProvider(StrEnum):
    """How an e-mail channel sends: through its SMTP server, or SendGrid's Mail Send API."""

    SMTP = "SMTP"
    SENDGRID = "SENDGRID"
