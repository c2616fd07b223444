"""Issue 7: no stored secret reaches a log record, whichever logger or handler, in the
message, its arguments or the traceback; the filter lives only while services are open."""

from __future__ import annotations

import logging
import timeit

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.delivery.test_delivery import save
from tests.support import Api
from tocsin.storage.redaction import (
    REDACTED,
    SCAN_LIMIT,
    SecretRegistry,
    log_redaction,
    redact_record,
    remove_log_redaction,
    secret_registry,
)
from tocsin.storage.secretbox import SecretBox

CANARY = "CANARYr3d4c7"
BOT = f"987654321:AA{CANARY}ZZZZZZZZZZZZZZZZZZZZZZZZZZ"
SIGNING = "whsec_Q0FOQVJZcjNkNGM3LXNpZ25pbmctc2VjcmV0"  # base64 of "CANARYr3d4c7-signing-secret"
HOOK_PATH = f"/services/T0/{CANARY}/hook"


async def _save_canaries(api: Api) -> str:
    url = f"https://hooks.example.com{HOOK_PATH}?token={CANARY}q"
    await save(api, "Slack", {"webhookUrl": url})
    await save(
        api,
        "Webhook",
        {
            "url": "https://receiver.example.com/in",
            "signingSecret": SIGNING,
            "headers": {"Authorization": f"Bearer {CANARY}hdr"},
        },
    )
    await save(api, "Telegram", {"botToken": BOT, "chatId": "42"})
    return url


async def test_third_party_loggers_args_and_tracebacks_are_redacted(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # given channels whose secrets hold the canary (the save encrypted them)
    url = await _save_canaries(api)

    # when third-party loggers speak of them: in the message, in arguments, in a traceback
    logging.getLogger("uvicorn.error").warning(f"could not reach {url}")
    logging.getLogger("aiohttp.client").warning("POST %s failed", url)
    logging.getLogger("aiosmtplib").debug("args %(a)s %(b)r", {"a": CANARY + "hdr", "b": 7})
    logging.getLogger("httpx").warning(
        "HTTP Request: POST %s", f"https://api.telegram.org/bot{BOT}/sendMessage"
    )
    logging.getLogger("tocsin.worker").info("headers %s", {"Authorization": f"Bearer {CANARY}hdr"})
    logging.getLogger("tocsin.worker").info("signature key %s", SIGNING.removeprefix("whsec_"))
    try:
        raise httpx.ConnectError(f"[Errno 111] Connect call failed for {url}")
    except httpx.ConnectError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    # then no record shows the canary, every one says what was hidden, and the rest stays
    assert CANARY not in caplog.text
    assert CANARY not in str([(r.msg, r.args) for r in caplog.records])
    assert caplog.text.count(REDACTED) >= 7
    assert "could not reach [redacted]" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    assert "httpx.ConnectError: [Errno 111] Connect call failed for" in caplog.text
    assert "args [redacted] 7" in caplog.text


async def test_argument_shape_is_kept_for_formatters_that_read_args(api: Api) -> None:
    url = await _save_canaries(api)
    # uvicorn's access formatter unpacks record.args into five values
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", url, "1.1", 200),
        None,
    )
    redact_record(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert record.args[4] == 200
    assert CANARY not in record.getMessage()


async def test_a_record_without_secrets_is_left_alone_and_cheap(api: Api) -> None:
    await _save_canaries(api)
    args = ("d_123", "c_456", 12.5)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "sent %s to %s in %.1f ms", args, None
    )
    redact_record(record)
    assert record.args is args and record.msg == "sent %s to %s in %.1f ms"
    # a generous bound: the check is a handful of substring searches (microseconds)
    seconds = timeit.timeit(lambda: redact_record(record), number=1000) / 1000
    assert seconds < 0.001


def test_secretbox_feeds_the_registry_when_it_decrypts() -> None:
    box = SecretBox([Fernet.generate_key()])
    token = box.encrypt({"webhook_url": f"https://x.example.com/a/{CANARY}dec"})
    secret_registry.clear()
    assert not secret_registry.contains_secret(f"/a/{CANARY}dec")
    box.decrypt(token)
    assert secret_registry.redact(f"path /a/{CANARY}dec here") == f"path {REDACTED} here"
    secret_registry.clear()


def test_what_gives_a_secret_away() -> None:
    registry = SecretRegistry()
    registry.add_secrets(
        {
            "webhook_url": f"https://h.example.com/T0/{CANARY}/x?sig={CANARY}s",
            "bot_token": BOT,
            "password": f"{CANARY}pw",
            "headers": {"X-Key": f"Bearer {CANARY}b"},
        }
    )
    leaks = [
        f"/T0/{CANARY}/x",  # the path alone
        f"sig={CANARY}s",  # the query
        CANARY,  # a random-looking path segment
        f"/bot{BOT}/sendMessage",
        BOT.split(":", 1)[1],  # the bot token's secret half
        f"{CANARY}b",  # a header's token without its "Bearer"
        "%2FT0%2F" + CANARY,  # URL-encoded
        "Q0FOQVJZcjNkNGM3cHc=",  # base64 of the password (SMTP AUTH LOGIN)
    ]
    for leak in leaks:
        assert registry.contains_secret(f"x {leak} y"), leak
        assert CANARY not in registry.redact(f"x {leak} y"), leak
    # short, common pieces are not secrets: /x, Bearer, sendMessage
    assert registry.redact("Bearer sendMessage /x") == "Bearer sendMessage /x"


async def test_the_filter_lives_while_services_are_open(
    settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    from tocsin.services import open_services

    original = logging.getLogRecordFactory()
    async with open_services(settings, http=False) as services:  # type: ignore[arg-type]
        assert logging.getLogRecordFactory() is not original
        services.box.encrypt({"url": f"https://x.example.com/{CANARY}open"})
        logging.getLogger("any.library").warning("to /%sopen", CANARY)
    assert logging.getLogRecordFactory() is original
    assert "to [redacted]" in caplog.text
    # closed: the factory is gone and the secrets forgotten
    assert not secret_registry.contains_secret(f"/{CANARY}open")


def test_nested_installs_count() -> None:
    original = logging.getLogRecordFactory()
    with log_redaction():
        with log_redaction():
            pass
        assert logging.getLogRecordFactory() is not original
    assert logging.getLogRecordFactory() is original


def test_many_secrets_are_found_by_ngram_lookup() -> None:
    # given more detection strings than are scanned one by one
    registry = SecretRegistry()
    for number in range(40):
        registry.add_secrets({"url": f"https://h.example.com/hook/{number:04d}{CANARY}{number}"})
    assert len(registry.detect) > SCAN_LIMIT
    # then a leak of any one of them is found, anywhere in the text, and nothing else is
    leak = f"/hook/0031{CANARY}31"
    assert registry.contains_secret(f"POST {leak}/x failed")
    assert registry.redact(f"POST https://h.example.com{leak}") == f"POST {REDACTED}"
    assert registry.redact(f"x0031{CANARY}31") == f"x{REDACTED}"
    assert not registry.contains_secret(f"POST /hook/0031{CANARY}99 and {CANARY}")


def test_the_cli_redacts_for_the_whole_process() -> None:
    from tocsin import cli

    original = logging.getLogRecordFactory()
    cli._configure_logging()
    try:
        assert logging.getLogRecordFactory() is not original
    finally:
        remove_log_redaction()
    assert logging.getLogRecordFactory() is original


def test_a_record_that_cannot_be_checked_is_withheld(monkeypatch: pytest.MonkeyPatch) -> None:
    import tocsin.storage.redaction as redaction

    def broken(record: logging.LogRecord, registry: object = None) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(redaction, "redact_record", broken)
    with log_redaction():
        record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "%s", ("a",), None)
    assert record.getMessage() == "(log record withheld: redacting it failed)"
