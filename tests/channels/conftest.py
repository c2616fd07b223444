"""Fixtures for the channel tests: real peers on loopback, one of each per session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.channels import LOOPBACK_ONLY, MakeDestination, MakeMessage
from tests.peers import HttpReceiver, LocalCA, SmtpServer
from tocsin.channels.base import Destination, Message, SendContext
from tocsin.channels.http import build_http_client


@pytest.fixture(scope="session")
async def _https_receiver(ca: LocalCA) -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver(ca=ca) as receiver:
        yield receiver


@pytest.fixture
def https_receiver(_https_receiver: HttpReceiver) -> HttpReceiver:
    """An HTTPS receiver whose certificate (localhost, 127.0.0.1) comes from ``ca``."""
    _https_receiver.reset()
    return _https_receiver


@pytest.fixture(scope="session")
async def http_client(ca: LocalCA) -> AsyncIterator[httpx.AsyncClient]:
    """The client the app would build, allowing loopback and trusting the test CA."""
    client = build_http_client(
        timeout=5.0, allowed_networks=LOOPBACK_ONLY, ssl_context=ca.client_context()
    )
    yield client
    await client.aclose()


@pytest.fixture
def context(http_client: httpx.AsyncClient, receiver: HttpReceiver, ca: LocalCA) -> SendContext:
    return SendContext(
        http=http_client,
        timeout=2.0,
        message_prefix="[Tocsin]",
        telegram_api_base=receiver.base_url,
        allowed_networks=LOOPBACK_ONLY,
        ssl_context=ca.client_context(),
    )


@pytest.fixture
def make_message() -> MakeMessage:
    """A Message like the contract's example; keyword arguments replace fields."""

    def make(**changes: Any) -> Message:
        fields: dict[str, Any] = {
            "delivery_id": "dlv_01HZX3",
            "event_id": "evt_01HZX2",
            "event_type": "refresh_failed",
            "priority": "HIGH",
            "title": "dbt build failed in staging",
            "detail": "1 of 24 models failed: stg_orders",
            "metadata": {"environment": "staging", "command": "build"},
            "occurred_at": datetime(2026, 6, 12, 9, 15, tzinfo=UTC),
        }
        fields.update(changes)
        return Message(**fields)

    return make


@pytest.fixture
def make_destination() -> MakeDestination:
    def make(
        kind: str, *, config: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
    ) -> Destination:
        return Destination(
            channel_id="chn_1",
            kind=kind,
            name=f"test {kind.lower()}",
            config=config or {},
            secrets=secrets or {},
        )

    return make


@pytest.fixture(scope="session")
async def _smtp_implicit_tls(ca: LocalCA) -> AsyncIterator[SmtpServer]:
    async with SmtpServer(ca=ca, mode="TLS") as server:
        yield server


@pytest.fixture
def smtp_tls_server(_smtp_implicit_tls: SmtpServer) -> SmtpServer:
    """Implicit TLS; AUTH offered but not required."""
    _smtp_implicit_tls.reset()
    return _smtp_implicit_tls


@pytest.fixture(scope="session")
async def _smtp_plain() -> AsyncIterator[SmtpServer]:
    async with SmtpServer(mode="NONE") as server:
        yield server


@pytest.fixture
def smtp_plain_server(_smtp_plain: SmtpServer) -> SmtpServer:
    """Plain SMTP that offers no STARTTLS."""
    _smtp_plain.reset()
    return _smtp_plain
