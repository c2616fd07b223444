"""Digests sent to real peers on loopback (issue 9, acceptance 5 at the kind level): a
200-event digest arrives at Slack (webhook and bot), Discord, Telegram and Teams as
consecutive messages within the service's limits holding every event once, and as one
mail over SMTP (STARTTLS + AUTH) and SendGrid; a part that fails stops the digest, and the
next attempt resumes after the parts that went out."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.channels import CANARY
from tests.channels.digests import SHAPES, event_ids, mail_of, mail_parts, make_digest
from tests.peers import HttpReceiver, RecordedRequest, Reply, SmtpServer
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.sendgrid import MAIL_SEND_PATH

SLACK_TOKEN = f"xoxb-1234567890-9876543210-{CANARY}Ab12"
TELEGRAM_TOKEN = f"123456789:{CANARY}-AAbbCC"
SLACK_OK = json.dumps({"ok": True, "channel": "C0123ABCD", "ts": "1718183700.000100"})
SLACK_FAILED = json.dumps({"ok": False, "error": "internal_error"})
SENDGRID_KEY = f"SG.{CANARY}-id0123.{CANARY}-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Peer:
    """A kind's channel pointed at the receiver: where it posts and what "ok" looks like."""

    shape: str
    kind: str
    path: str
    config: dict[str, Any]
    secrets: dict[str, Any]
    ok: Reply = field(default_factory=Reply)
    failed: Reply = field(default_factory=lambda: Reply(500, body="down for maintenance"))


def http_peers(receiver: HttpReceiver) -> dict[str, Peer]:
    hook = f"/hook/{CANARY}"
    return {
        "slack-webhook": Peer("slack", "SLACK", hook, {}, {"webhook_url": receiver.url(hook)}),
        "slack-bot": Peer(
            "slack",
            "SLACK",
            "/chat.postMessage",
            {"channel": "C0123ABCD"},
            {"bot_token": SLACK_TOKEN},
            ok=Reply(200, body=SLACK_OK),
            failed=Reply(200, body=SLACK_FAILED),  # Slack's API fails with HTTP 200
        ),
        "discord": Peer(
            "discord",
            "DISCORD",
            hook,
            {},
            {"webhook_url": receiver.url(hook)},
            ok=Reply(204, body=b""),
        ),
        "telegram": Peer(
            "telegram",
            "TELEGRAM",
            f"/bot{TELEGRAM_TOKEN}/sendMessage",
            {"chat_id": "-1001234567890"},
            {"bot_token": TELEGRAM_TOKEN},
        ),
        "teams": Peer(
            "teams", "TEAMS", hook, {}, {"webhook_url": receiver.url(hook)}, ok=Reply(202)
        ),
    }


HTTP_PEERS = ["slack-webhook", "slack-bot", "discord", "telegram", "teams"]


@pytest.fixture
def peer_context(context: SendContext, receiver: HttpReceiver) -> SendContext:
    """Every API base (Telegram, Slack, SendGrid) at the receiver."""
    return dataclasses.replace(
        context,
        slack_api_base=receiver.base_url,
        sendgrid_api_base=receiver.base_url,
        telegram_api_base=receiver.base_url,
    )


def destination_of(peer: Peer) -> Destination:
    return Destination("chn_1", peer.kind, f"test {peer.shape}", peer.config, peer.secrets)


def assert_consecutive_parts_hold_every_event_once(
    shape_name: str, requests: list[RecordedRequest], count: int
) -> None:
    shape = SHAPES[shape_name]
    parts = [request.json() for request in requests]
    assert [event for part in parts for event in shape.events(part)] == event_ids(count)
    for index, part in enumerate(parts, start=1):
        shape.check_limits(part)
        assert f"{index}/{len(parts)}" in shape.headline(part)
    for request in requests:
        assert CANARY not in request.body.decode()


@pytest.mark.parametrize("name", HTTP_PEERS)
async def test_a_200_event_digest_arrives_as_consecutive_messages_within_limits(
    name: str, receiver: HttpReceiver, peer_context: SendContext
) -> None:
    # given a channel whose service takes every message
    peer = http_peers(receiver)[name]
    receiver.respond_in_turn(peer.path, peer.ok)
    digest = make_digest(200, "mixed")

    # when a 200-event digest is sent
    result, sent = await SHAPES[peer.shape].sender.send_digest(
        destination_of(peer), digest, peer_context
    )

    # then the receiver got several consecutive messages, every event once, within limits
    assert (result.ok, result.error) == (True, None)
    requests = receiver.requests_to(peer.path)
    assert sent == len(requests) > 1
    assert_consecutive_parts_hold_every_event_once(peer.shape, requests, 200)
    if name == "slack-bot":
        assert all(r.headers["authorization"] == f"Bearer {SLACK_TOKEN}" for r in requests)
        assert all(r.json()["channel"] == "C0123ABCD" for r in requests)


@pytest.mark.parametrize("name", HTTP_PEERS)
async def test_a_failed_part_stops_the_digest_and_the_next_attempt_resumes_after_it(
    name: str, receiver: HttpReceiver, peer_context: SendContext
) -> None:
    # given a service that takes the first part, fails the second, then takes the rest
    peer = http_peers(receiver)[name]
    receiver.respond_in_turn(peer.path, peer.ok, peer.failed, peer.ok)
    destination, digest = destination_of(peer), make_digest(200, "mixed")
    sender = SHAPES[peer.shape].sender

    # when the digest is sent, the second part fails: one part has gone out
    result, sent = await sender.send_digest(destination, digest, peer_context)
    assert (result.ok, result.retryable, sent) == (False, True, 1)
    assert len(receiver.requests_to(peer.path)) == 2
    if name == "slack-bot":
        assert result.error == "internal_error"

    # and the next attempt, told one part went out, sends parts 2.. only
    result, sent = await sender.send_digest(destination, digest, peer_context, sent=1)
    assert result.ok
    requests = receiver.requests_to(peer.path)
    assert sent == len(requests) - 1
    assert requests[1].body == requests[2].body  # the failed part, sent again
    assert_consecutive_parts_hold_every_event_once(peer.shape, [requests[0], *requests[2:]], 200)


async def test_a_resumed_digest_whose_parts_all_went_out_sends_nothing_more(
    receiver: HttpReceiver, peer_context: SendContext
) -> None:
    peer = http_peers(receiver)["teams"]
    destination, digest = destination_of(peer), make_digest(200, "mixed")
    _, parts = await SHAPES["teams"].sender.send_digest(destination, digest, peer_context)
    receiver.reset()

    result, sent = await SHAPES["teams"].sender.send_digest(
        destination, digest, peer_context, sent=parts
    )

    assert (result.ok, sent) == (True, parts)
    assert receiver.requests_to(peer.path) == []


async def test_a_200_event_digest_arrives_as_one_mail_over_starttls_with_auth(
    smtp_server: SmtpServer, context: SendContext
) -> None:
    destination = Destination(
        "chn_1",
        "EMAIL",
        "ops mail",
        {
            "to": ["ops@example.com"],
            "smtp_host": "localhost",
            "smtp_port": smtp_server.port,
            "security": "STARTTLS",
            "username": smtp_server.username,
            "from_address": "tocsin@example.com",
        },
        {"password": smtp_server.password},
    )

    result, sent = await SHAPES["email"].sender.send_digest(
        destination, make_digest(200, "mixed"), context
    )

    assert (result.ok, result.error, sent) == (True, None, 1)
    [mail] = await smtp_server.wait_for_messages(1)
    assert mail.over_tls and mail.authenticated_as == smtp_server.username
    assert mail.message["Message-ID"] == "<tocsin.dlv_digest_1@example.com>"
    subject, text, html = mail_parts(mail.data)
    assert subject == "[Tocsin] Digest: 200 events (MEDIUM)"
    assert SHAPES["email"].events(mail.data) == event_ids(200)
    assert html.count("<tr>") == 201 and "<table" in html
    assert "2026-06-12 09:00:00 UTC to 2026-06-12 09:05:00 UTC" in text
    assert smtp_server.password not in mail_of(mail.data).as_string()


async def test_a_200_event_digest_arrives_as_one_mail_through_sendgrid(
    receiver: HttpReceiver, peer_context: SendContext
) -> None:
    receiver.respond(MAIL_SEND_PATH, 202, body=b"")
    destination = Destination(
        "chn_1",
        "EMAIL",
        "ops mail",
        {"provider": "SENDGRID", "to": ["ops@example.com"], "from_address": "tocsin@example.com"},
        {"sendgrid_api_key": SENDGRID_KEY},
    )

    result, sent = await SHAPES["sendgrid"].sender.send_digest(
        destination, make_digest(200, "mixed"), peer_context
    )

    assert (result.ok, result.status_code, sent) == (True, 202, 1)
    [request] = receiver.requests_to(MAIL_SEND_PATH)
    assert request.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    body = request.json()
    assert body["subject"] == "[Tocsin] Digest: 200 events (MEDIUM)"
    assert SHAPES["sendgrid"].events(body) == event_ids(200)
    assert CANARY not in request.body.decode()


async def test_an_email_channel_that_cannot_carry_the_digest_fails_with_the_reason(
    peer_context: SendContext,
) -> None:
    destination = Destination(
        "chn_1", "EMAIL", "no one", {"provider": "SENDGRID", "to": []}, {"sendgrid_api_key": "x"}
    )

    result, sent = await SHAPES["sendgrid"].sender.send_digest(
        destination, make_digest(3), peer_context
    )

    assert (result.ok, result.retryable, sent) == (False, False, 0)
    assert result.error == "no recipient address (Email To) is set"
