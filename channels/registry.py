"""Which kinds of channel there are: an explicit table, no discovery.

Everything that works per kind (saving, reading, routing, sendTest, the worker and the
schema's types) looks the kind up here; adding a kind is one line below.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tocsin.channels.base import Kind
from tocsin.channels.discord import DiscordSender
from tocsin.channels.email import EmailSender
from tocsin.channels.slack import SlackSender
from tocsin.channels.teams import TeamsSender
from tocsin.channels.telegram import TelegramSender
from tocsin.channels.webhook import WebhookSender

if TYPE_CHECKING:
    from tocsin.storage.tables import ChannelRow

KINDS: dict[str, Kind] = {
    kind.kind: kind
    for kind in (
        SlackSender(),
        WebhookSender(),
        EmailSender(),
        DiscordSender(),
        TelegramSender(),
        TeamsSender(),
    )
}


class ChannelKind(StrEnum):
    """The kinds as the API names them (a test holds it equal to ``KINDS``)."""

    SLACK = "SLACK"
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"
    DISCORD = "DISCORD"
    TELEGRAM = "TELEGRAM"
    TEAMS = "TEAMS"


SENDERS = KINDS
"The kinds as senders: the same table."


def kind_for(kind: str) -> Kind:
    """The kind named by a ``ChannelKind`` value (any case); KeyError for an unknown one."""
    try:
        return KINDS[kind.upper()]
    except KeyError:
        raise KeyError(f"no sender for channel kind {kind!r}") from None


sender_for = kind_for


def is_configured(row: ChannelRow) -> bool:
    """Every field the channel's kind needs, secrets included, is stored."""
    return kind_for(row.kind).is_configured(row.config, row.secrets_set)
