"""Which sender delivers which channel kind: an explicit table, no discovery."""

from __future__ import annotations

from tocsin.channels.base import ChannelSender
from tocsin.channels.discord import DiscordSender
from tocsin.channels.email import EmailSender
from tocsin.channels.slack import SlackSender
from tocsin.channels.telegram import TelegramSender
from tocsin.channels.webhook import WebhookSender

SENDERS: dict[str, ChannelSender] = {
    "SLACK": SlackSender(),
    "WEBHOOK": WebhookSender(),
    "EMAIL": EmailSender(),
    "DISCORD": DiscordSender(),
    "TELEGRAM": TelegramSender(),
}


def sender_for(kind: str) -> ChannelSender:
    """The sender for a ``ChannelKind`` (any case); KeyError for an unknown kind."""
    try:
        return SENDERS[kind.upper()]
    except KeyError:
        raise KeyError(f"no sender for channel kind {kind!r}") from None
