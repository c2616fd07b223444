"""The registry: one sender per ChannelKind."""

from __future__ import annotations

import pytest

from tocsin.channels.registry import SENDERS, sender_for


def test_every_channel_kind_has_its_sender() -> None:
    assert set(SENDERS) == {"SLACK", "WEBHOOK", "EMAIL", "DISCORD", "TELEGRAM", "TEAMS"}
    assert all(sender.kind == kind for kind, sender in SENDERS.items())


def test_sender_for_accepts_any_case_and_refuses_unknown_kinds() -> None:
    assert sender_for("slack") is SENDERS["SLACK"]
    with pytest.raises(KeyError, match="no sender for channel kind 'PAGER'"):
        sender_for("PAGER")
