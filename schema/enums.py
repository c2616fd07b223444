"""The domain's enums, exposed to GraphQL under the contract's names."""

from __future__ import annotations

import strawberry

from tocsin.channels.registry import ChannelKind
from tocsin.storage.enums import (
    DeliveryMode,
    DeliveryStatus,
    DigestStatus,
    EmailProvider,
    Priority,
    Role,
    SmtpSecurity,
)

__all__ = [
    "ChannelKind",
    "DeliveryMode",
    "DeliveryStatus",
    "DigestStatus",
    "EmailProvider",
    "Priority",
    "Role",
    "SmtpSecurity",
]

# strawberry.enum marks the class it is given and returns that same class, so the GraphQL
# enums are the domain enums themselves, and type checkers see plain Enum classes.
strawberry.enum(ChannelKind)
strawberry.enum(Priority)
strawberry.enum(DeliveryMode)
strawberry.enum(DeliveryStatus)
strawberry.enum(SmtpSecurity)
strawberry.enum(Role)
strawberry.enum(EmailProvider)
strawberry.enum(DigestStatus)
