"""Telegram: sendMessage with HTML that Telegram accepts, at most 4096 characters."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.peers import HttpReceiver
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.rendering import text_length
from tocsin.channels.telegram import TelegramSender

TOKEN = f"123456789:{CANARY}-AAbbCC"
PATH = f"/bot{TOKEN}/sendMessage"


def telegram_destination(
    make_destination: MakeDestination, token: str = TOKEN, chat_id: str = "-1001234567890"
) -> Destination:
    return make_destination("TELEGRAM", secrets={"bot_token": token}, config={"chat_id": chat_id})


class _TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.balanced = True

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.balanced = self.balanced and bool(self.open) and self.open.pop() == tag


def assert_valid_telegram_html(text: str) -> None:
    assert text_length(text) <= 4096
    # Every "&" starts a whole entity: no entity was cut in half.
    assert re.findall(r"&(?!(?:amp|lt|gt|quot);)", text) == []
    parser = _TagBalance()
    parser.feed(text)
    parser.close()
    assert parser.balanced and parser.open == []
    assert set(re.findall(r"</?(\w+)", text)) <= {"b", "i"}


async def test_receiver_gets_send_message_with_html(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(PATH, body='{"ok": true, "result": {"message_id": 7}}')
    message = make_message(title="Build <main> & deploy")

    result = await TelegramSender().send(telegram_destination(make_destination), message, context)

    assert result.ok, result.error
    [request] = receiver.requests_to(PATH)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"chat_id", "text", "parse_mode"}
    assert body["chat_id"] == "-1001234567890"
    assert body["parse_mode"] == "HTML"
    text = body["text"]
    assert text.startswith("<b>[Tocsin] Build &lt;main&gt; &amp; deploy</b>\n")
    assert "1 of 24 models failed: stg_orders" in text
    assert "<b>environment:</b> staging" in text
    assert "HIGH · refresh_failed" in text
    assert_valid_telegram_html(text)


async def test_a_huge_message_is_cut_safely_to_4096_characters(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    message = make_message(
        title="<&>" * 500,
        detail="a < b && c > d " * 1000,
        metadata={f"key<{i}>": "&" * 900 for i in range(40)},
    )

    result = await TelegramSender().send(telegram_destination(make_destination), message, context)

    assert result.ok, result.error
    text = receiver.requests_to(PATH)[0].json()["text"]
    assert_valid_telegram_html(text)
    assert "a &lt; b &amp;&amp; c &gt; d" in text
    assert "more metadata fields not shown" in text


async def test_errors_never_contain_the_bot_token(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(
        PATH,
        401,
        body=f'{{"ok": false, "error_code": 401, "description": "Unauthorized: {TOKEN}"}}',
    )

    result = await TelegramSender().send(
        telegram_destination(make_destination), make_message(), context
    )

    assert result.error == "HTTP 401: Unauthorized: [redacted]"
    assert not result.retryable


async def test_a_slow_api_times_out_without_showing_the_token(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(PATH, hang=5)
    quick = SendContext(
        http=context.http,
        timeout=0.2,
        message_prefix=context.message_prefix,
        telegram_api_base=context.telegram_api_base,
        allowed_networks=context.allowed_networks,
    )

    result = await TelegramSender().send(
        telegram_destination(make_destination), make_message(), quick
    )

    assert result.error == "timed out after 0.2s"
    assert result.retryable


async def test_a_malformed_token_is_not_sent_anywhere(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = telegram_destination(make_destination, token=f"1:{CANARY}/../../other")

    result = await TelegramSender().send(destination, make_message(), context)

    assert result.error == "Telegram bot token is malformed"
    assert receiver.requests == []


async def test_flood_control_wait_in_the_body_is_honoured(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # Telegram names the wait in the JSON body, without a Retry-After header
    receiver.respond(
        PATH,
        429,
        body='{"ok": false, "error_code": 429, "description": "Too Many Requests: retry '
        'after 17", "parameters": {"retry_after": 17}}',
    )

    result = await TelegramSender().send(
        telegram_destination(make_destination), make_message(), context
    )

    assert result.retryable
    assert result.status_code == 429
    assert result.retry_after == 17
