"""The domain's enums, exposed to GraphQL under the contract's names."""

from __future__ import annotations

import strawberry

from tocsin.storage import enums

ChannelKind = strawberry.enum(enums.ChannelKind)
Priority = strawberry.enum(enums.Priority)
DeliveryMode = strawberry.enum(enums.DeliveryMode)
DeliveryStatus = strawberry.enum(enums.DeliveryStatus)
SmtpSecurity = strawberry.enum(enums.SmtpSecurity)
Role = strawberry.enum(enums.Role)
