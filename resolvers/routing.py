"""Which channels an event goes to. The one place that decides it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tocsin.channels.registry import is_configured
from tocsin.storage.enums import DeliveryStatus, Priority
from tocsin.storage.ingest import NewEvent
from tocsin.storage.tables import ChannelRow


def metadata_matches(wanted: dict[str, list[str]], metadata: dict[str, Any]) -> bool:
    """Every key of ``wanted`` is in the metadata with one of the listed values."""
    return all(key in metadata and str(metadata[key]) in values for key, values in wanted.items())


def delivery_status_for(channel: ChannelRow, event: NewEvent, now: datetime) -> str | None:
    """PENDING when the channel should get the event, SUPPRESSED when it would but is
    muted (recorded, not sent), None when the event is not for it."""
    if not channel.enabled or not is_configured(channel):
        return None
    if channel.event_types is not None and event.type not in channel.event_types:
        return None
    if Priority(event.priority).rank < Priority(channel.min_priority).rank:
        return None
    if channel.metadata_match and not metadata_matches(channel.metadata_match, event.metadata):
        return None
    if channel.muted_until is not None and channel.muted_until > now:
        return DeliveryStatus.SUPPRESSED.value
    return DeliveryStatus.PENDING.value
