"""Which channels an event goes to, and why. The one place that decides it.

``route`` answers a ``Decision`` (an outcome and a sentence a person can act on) for one
channel and one event; ``emitEvent`` stores what it decides and ``explainRouting`` shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tocsin.channels.registry import is_configured
from tocsin.storage.enums import DeliveryMode, Priority, RouteOutcome
from tocsin.storage.ingest import Decision, NewEvent
from tocsin.storage.mutes import mute_in_force
from tocsin.storage.tables import ChannelRow

__all__ = ["DIGESTED_PRIORITIES", "route"]

DIGESTED_PRIORITIES = frozenset({Priority.MEDIUM, Priority.LOW, Priority.INFO})
"What a DIGEST channel collects; CRITICAL and HIGH are sent at once."


def route(channel: ChannelRow, event: NewEvent, now: datetime) -> Decision:
    """SEND, DIGEST, SUPPRESSED (recorded, not sent) or SKIPPED (not for this channel)."""
    skipped = _why_skipped(channel, event)
    if skipped is not None:
        return Decision(RouteOutcome.SKIPPED, skipped)
    muted_until = mute_in_force(channel.muted_until, now)
    if muted_until is not None:
        return Decision(RouteOutcome.SUPPRESSED, f"muted until {_instant(muted_until)}")
    priority = Priority(event.priority)
    if channel.mode == DeliveryMode.DIGEST and priority in DIGESTED_PRIORITIES:
        return Decision(RouteOutcome.DIGEST, f"priority {priority} goes into the {priority} digest")
    return Decision(RouteOutcome.SEND, "sent at once")


def _why_skipped(channel: ChannelRow, event: NewEvent) -> str | None:
    if not channel.enabled:
        return "channel is disabled"
    if not is_configured(channel):
        return "channel is not configured"
    unlisted = _why_not_listed(channel, event)
    if unlisted is not None:
        return unlisted
    if Priority(event.priority).rank < Priority(channel.min_priority).rank:
        return f"priority {event.priority} is below minPriority {channel.min_priority}"
    if channel.metadata_match:
        for key, values in channel.metadata_match.items():
            if key not in event.metadata:
                return f"metadata has no {key} (wanted one of [{', '.join(values)}])"
            if str(event.metadata[key]) not in values:
                return f"metadata {key}={event.metadata[key]} is not in [{', '.join(values)}]"
    return None


def _why_not_listed(channel: ChannelRow, event: NewEvent) -> str | None:
    """An event is listed when its type is in eventTypes or its category is in
    eventCategories; a null list lists nothing, and both null list every event."""
    types, categories = channel.event_types, channel.event_categories
    if types is None and categories is None:
        return None
    if (types is not None and event.type in types) or (
        categories is not None and event.category in categories
    ):
        return None
    type_reason = f"event type {event.type} is not in eventTypes {_listed(types)}"
    category_reason = f"category {event.category} is not in eventCategories {_listed(categories)}"
    if categories is None:
        return type_reason
    if types is None:
        return (
            f"event type {event.type} is in category {event.category}, "
            f"which is not in eventCategories {_listed(categories)}"
        )
    return f"{type_reason} and its {category_reason}"


def _listed(names: list[str] | None) -> str:
    return f"[{', '.join(names or ())}]"


def _instant(at: datetime) -> str:
    """2026-12-04T09:00Z: minutes, UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
