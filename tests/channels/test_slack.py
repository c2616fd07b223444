"""Slack: what a Slack-compatible receiver gets, and what a user reads when it fails."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.peers import HttpReceiver
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.slack import SlackSender

HOOK = f"/services/T0001/B0002/{CANARY}"


def slack_destination(make_destination: MakeDestination, url: str) -> Destination:
    return make_destination("SLACK", secrets={"webhook_url": url})


def blocks_of(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [block for block in payload["blocks"] if block["type"] == kind]


async def test_receiver_gets_fallback_text_and_blocks(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = slack_destination(make_destination, receiver.url(HOOK))

    result = await SlackSender().send(destination, make_message(), context)

    assert result.ok, result.error
    assert result.status_code == 200
    assert result.latency_ms > 0
    [request] = receiver.requests_to(HOOK)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    payload = request.json()
    assert (
        payload["text"] == "[Tocsin] dbt build failed in staging: 1 of 24 models failed: stg_orders"
    )
    [header] = blocks_of(payload, "header")
    assert header["text"] == {
        "type": "plain_text",
        "text": "dbt build failed in staging",
        "emoji": True,
    }
    detail, metadata = blocks_of(payload, "section")
    assert detail["text"] == {"type": "mrkdwn", "text": "1 of 24 models failed: stg_orders"}
    assert [field["text"] for field in metadata["fields"]] == [
        "*environment*\nstaging",
        "*command*\nbuild",
    ]
    [context_block] = blocks_of(payload, "context")
    footer = context_block["elements"][0]["text"]
    assert "*HIGH*" in footer
    assert "`refresh_failed`" in footer


async def test_without_detail_the_text_is_just_the_title(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = slack_destination(make_destination, receiver.url(HOOK))

    await SlackSender().send(destination, make_message(detail=None, metadata={}), context)

    payload = receiver.requests_to(HOOK)[0].json()
    assert payload["text"] == "[Tocsin] dbt build failed in staging"
    assert [block["type"] for block in payload["blocks"]] == ["header", "context"]


async def test_long_title_fits_the_header_and_markup_is_escaped(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = slack_destination(make_destination, receiver.url(HOOK))
    message = make_message(title="x" * 400, detail="<!channel> ping & <https://evil|click>")

    await SlackSender().send(destination, message, context)

    payload = receiver.requests_to(HOOK)[0].json()
    header = blocks_of(payload, "header")[0]["text"]["text"]
    assert len(header) <= 150
    assert header.endswith("…")
    detail = blocks_of(payload, "section")[0]["text"]["text"]
    assert detail == "&lt;!channel&gt; ping &amp; &lt;https://evil|click&gt;"
    assert "<!channel>" not in payload["text"]


async def test_many_metadata_keys_stay_within_block_limits(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = slack_destination(make_destination, receiver.url(HOOK))
    metadata = {f"key{i}": "v" * 3000 for i in range(60)}

    result = await SlackSender().send(destination, make_message(metadata=metadata), context)

    assert result.ok
    payload = receiver.requests_to(HOOK)[0].json()
    assert len(payload["blocks"]) <= 50
    for section in blocks_of(payload, "section"):
        assert len(section.get("fields", [])) <= 10
        assert all(len(field["text"]) <= 2000 for field in section.get("fields", []))
    assert "20 more metadata fields" in blocks_of(payload, "context")[0]["elements"][0]["text"]


async def test_a_rejected_payload_reports_slacks_answer(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 400, body="invalid_payload")
    destination = slack_destination(make_destination, receiver.url(HOOK))

    result = await SlackSender().send(destination, make_message(), context)

    assert not result.ok
    assert result.status_code == 400
    assert result.error == "HTTP 400: invalid_payload"
    assert not result.retryable


async def test_rate_limit_is_retryable_after_the_given_delay(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 429, body="rate_limited", retry_after=30)
    destination = slack_destination(make_destination, receiver.url(HOOK))

    result = await SlackSender().send(destination, make_message(), context)

    assert result.retryable
    assert result.retry_after == 30.0
    assert result.error == "HTTP 429: rate_limited"


async def test_the_webhook_url_never_appears_in_an_error(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    url = receiver.url(HOOK)
    receiver.respond(HOOK, 500, body=f"boom: no route for {url} (path {HOOK}) " * 3)
    receiver.respond("/slow" + HOOK, hang=5)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    urls = [
        url,
        receiver.url("/slow" + HOOK),
        f"http://127.0.0.1:{closed_port}{HOOK}",
        f"http://10.1.2.3{HOOK}",
        f"ftp://example.com{HOOK}",
    ]
    quick = dataclasses.replace(context, timeout=0.3)

    errors = []
    for target in urls:
        result = await SlackSender().send(
            slack_destination(make_destination, target), make_message(), quick
        )
        assert not result.ok
        errors.append(result.error or "")

    assert errors[0].startswith("HTTP 500: boom")
    assert errors[1] == "timed out after 0.3s"
    assert all(CANARY not in error and "T0001/B0002" not in error for error in errors), errors
    assert all(len(error) <= 300 for error in errors)


async def test_missing_url_is_a_clear_failure(
    context: SendContext, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await SlackSender().send(make_destination("SLACK"), make_message(), context)

    assert not result.ok
    assert result.error == "Slack webhook URL is not set"
    assert not result.retryable
