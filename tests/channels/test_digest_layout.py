"""The digest splitter, property-style, for every kind that renders digests here: for 1, 3,
49 and 200 events with plain, long, emoji and markup text, every event is in exactly one
part, in order; each part keeps every limit of its service, names its period and
priority, says when it shortened an event, and is marked "i/n" exactly when n > 1."""

from __future__ import annotations

from typing import cast

import httpx
import pytest

from tests.channels import CANARY
from tests.channels.digests import (
    MARK,
    SHAPES,
    STYLES,
    event_ids,
    make_digest,
    render_destination,
)
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.digest_layout import SHORTENED_NOTE, pack
from tocsin.channels.http import json_body
from tocsin.channels.rendering import human_time

SECRETS = {
    "slack": {"webhook_url": f"https://hooks.slack.com/services/T1/B2/{CANARY}"},
    "discord": {"webhook_url": f"https://discord.com/api/webhooks/1/{CANARY}"},
    "telegram": {"bot_token": f"123456789:{CANARY}-AAbbCC"},
    "teams": {"webhook_url": f"https://example.webhook.office.com/{CANARY}"},
    "email": {"password": CANARY},
    "sendgrid": {"sendgrid_api_key": f"SG.{CANARY}-id0123.{CANARY}-0123456789abcdefghijkl"},
}


def render_parts(name: str, count: int, style: str) -> list[object]:
    shape = SHAPES[name]
    destination = render_destination(name, **SECRETS[name])
    return shape.sender.render_digest(destination, make_digest(count, style), _context())


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("count", [1, 3, 49, 200])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_event_is_in_exactly_one_part_in_order_and_each_part_keeps_every_limit(
    name: str, count: int, style: str
) -> None:
    shape = SHAPES[name]

    parts = render_parts(name, count, style)

    assert [event for part in parts for event in shape.events(part)] == event_ids(count)
    for index, part in enumerate(parts, start=1):
        shape.check_limits(part)
        headline = shape.headline(part)
        if len(parts) > 1:
            assert f"{index}/{len(parts)}" in headline
        else:
            assert MARK.search(headline) is None, headline
        text = shape.text(part)
        assert "MEDIUM" in headline
        assert human_time(make_digest(1).period_start) in text
        assert human_time(make_digest(1).period_end) in text
        assert (SHORTENED_NOTE in text) == (style in {"long", "emoji"})
        assert CANARY not in (part if isinstance(part, str) else _raw(part))


def _raw(part: object) -> str:
    if isinstance(part, dict):
        return json_body(part).decode()
    return str(part)


@pytest.mark.parametrize("name", ["slack", "discord", "telegram", "teams"])
def test_a_200_event_digest_is_split_and_a_small_one_is_not(name: str) -> None:
    assert len(render_parts(name, 200, "plain")) > 1
    assert len(render_parts(name, 3, "plain")) == 1


def test_slack_fills_a_part_up_to_its_50_blocks() -> None:
    # 2 blocks of header and period, 48 events: 200 events are 48 + 48 + 48 + 48 + 8
    parts = SHAPES["slack"].sender.render_digest(
        render_destination("slack"), make_digest(200), _context()
    )
    assert [len(part["blocks"]) for part in parts] == [50, 50, 50, 50, 10]
    assert "events 49 to 96 of 200" in parts[1]["blocks"][1]["elements"][0]["text"]


def test_the_slack_channel_addresses_every_part() -> None:
    destination = Destination("chn_1", "SLACK", "bot", {"channel": "#ops"}, {"bot_token": "x"})
    parts = SHAPES["slack"].sender.render_digest(destination, make_digest(100), _context())
    assert len(parts) > 1 and all(part["channel"] == "#ops" for part in parts)


def test_email_is_one_mail_with_the_count_and_priority_in_its_subject() -> None:
    [part] = SHAPES["sendgrid"].sender.render_digest(
        render_destination("sendgrid"), make_digest(3), _context()
    )
    assert part["subject"] == "[Tocsin] Digest: 3 events (MEDIUM)"
    text = part["content"][0]["value"]
    assert "1. ev-000 dbt build failed" in text
    assert "   MEDIUM · refresh_failed · 2026-06-12 09:00:01 UTC" in text
    assert "3. ev-002 dbt build failed" in text and "<" not in text
    html = part["content"][1]["value"]
    assert html.count("<tr>") == 4  # the heading row and 3 events
    assert "<td>refresh_failed</td><td><strong>ev-001 dbt build failed</strong>" in html


def test_pack_fills_greedily_and_refuses_an_entry_that_fits_no_part() -> None:
    assert pack([(1, 5), (1, 5), (1, 5)], (1, 0), (3, 10)) == [range(0, 2), range(2, 3)]
    assert pack([], (1, 0), (3, 10)) == []
    with pytest.raises(ValueError, match="digest entry 1"):
        pack([(1, 5), (1, 11)], (0, 0), (3, 10))


def _context() -> SendContext:
    """Enough for rendering: nothing is sent."""
    return SendContext(
        http=cast(httpx.AsyncClient, None),
        timeout=1.0,
        message_prefix="[Tocsin]",
        telegram_api_base="",
    )
