"""The egress policy at send, through the app: a name that resolves to loopback and the
Telegram API base are refused at each attempt, and no request reaches the receiver.

The receiver's certificate names the loopback name and the app trusts its CA, so that
if the guard let the request through, the receiver would record it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.channels.loopback_names import loopback_name
from tests.peers import HttpReceiver, LocalCA
from tests.support import LOOPBACK, Api, eventually, make_settings, start_api
from tocsin.channels.http import build_http_client
from tocsin.settings import IPNetwork

LOOPBACK_NAME = loopback_name()
needs_name = pytest.mark.skipif(
    LOOPBACK_NAME is None, reason="no host name here resolves to loopback only"
)
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
SEND_TEST = """mutation($id: ID) { sendTest(channelId: $id) {
  results { ok statusCode error channel { id } } errors { code } } }"""
EMIT = """mutation($input: EmitEventInput!) { emitEvent(input: $input) {
  event { id } errors { code } } }"""
DELIVERIES = """{ deliveries(first: 50) { nodes { status lastError channel { name }
  attempts { ok error } } } }"""


@pytest.fixture(scope="module")
def named_ca() -> LocalCA:
    """A CA whose server certificate also names the loopback name."""
    ca = LocalCA()
    names = [LOOPBACK_NAME] if LOOPBACK_NAME else []
    ca.server_cert = ca.ca.issue_cert("localhost", "127.0.0.1", *names)
    return ca


@pytest.fixture(scope="module")
async def _named_receiver(named_ca: LocalCA) -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver(ca=named_ca) as receiver:
        yield receiver


@pytest.fixture
def named_receiver(_named_receiver: HttpReceiver) -> HttpReceiver:
    _named_receiver.reset()
    return _named_receiver


async def app_with(
    tmp_path: Path,
    database_url: str,
    ca: LocalCA,
    allowed: tuple[IPNetwork, ...],
    **overrides: Any,
) -> AsyncIterator[Api]:
    """The app with its worker, ``allowed`` networks, and HTTPS that trusts ``ca``."""
    settings = make_settings(
        tmp_path / "data", database_url, allowed_private_networks=allowed, **overrides
    )
    async for api in start_api(settings, run_worker=True):
        async with build_http_client(
            timeout=settings.delivery_timeout,
            allowed_networks=allowed,
            ssl_context=ca.client_context(),
        ) as client:
            services = api.services
            services.send_context = dataclasses.replace(
                services.send_context, http=client, ssl_context=ca.client_context()
            )
            yield api


@pytest.fixture
async def strict(tmp_path: Path, database_url: str, named_ca: LocalCA) -> AsyncIterator[Api]:
    """Nothing allowed: the default deployment."""
    async for api in app_with(tmp_path, database_url, named_ca, ()):
        yield api


@pytest.fixture
async def loopback_allowed(
    tmp_path: Path, database_url: str, named_ca: LocalCA
) -> AsyncIterator[Api]:
    async for api in app_with(tmp_path, database_url, named_ca, LOOPBACK):
        yield api


async def save(api: Api, kind: str, data: dict[str, Any]) -> str:
    result = await api.ok(
        f"mutation($i: {kind}ChannelInput!) {{ s: save{kind}Channel(input: $i) "
        "{ channel { id } errors { field code message } } }",
        {"i": data},
    )
    assert result["s"]["errors"] == [], result
    channel_id: str = result["s"]["channel"]["id"]
    return channel_id


async def save_named_channels(api: Api, receiver: HttpReceiver) -> None:
    url = receiver.url("/named", host=str(LOOPBACK_NAME))
    await save(api, "Webhook", {"name": "webhook", "url": url, "maxRetries": 0})
    await save(api, "Slack", {"name": "slack", "webhookUrl": url, "maxRetries": 0})
    await save(api, "Discord", {"name": "discord", "webhookUrl": url, "maxRetries": 0})


async def settled(api: Api, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        nodes: list[dict[str, Any]] = (await api.ok(DELIVERIES))["deliveries"]["nodes"]
        done = [n for n in nodes if n["status"] in {"DELIVERED", "FAILED"}]
        return nodes if len(done) >= count else None

    result: list[dict[str, Any]] = await eventually(check, timeout=20)
    return result


@needs_name
async def test_a_name_resolving_to_loopback_is_refused_at_each_attempt(
    strict: Api, named_receiver: HttpReceiver
) -> None:
    # given channels whose URL names a host that resolves to 127.0.0.1 (save can't know)
    await save_named_channels(strict, named_receiver)
    # when an event is emitted
    emitted = await strict.ok(EMIT, {"input": {"type": "refresh_failed", "title": "disk"}})
    assert emitted["emitEvent"]["errors"] == []
    # then every delivery fails, and its attempt names the rule
    nodes = await settled(strict, 3)
    says = f"destination not allowed: {LOOPBACK_NAME} resolves to 127.0.0.1, a loopback address"
    assert sorted(n["channel"]["name"] for n in nodes) == ["discord", "slack", "webhook"]
    for node in nodes:
        assert node["status"] == "FAILED"
        assert node["lastError"] == says
        assert node["attempts"] == [{"ok": False, "error": says}]
    assert named_receiver.requests == []


@needs_name
async def test_the_same_channels_deliver_when_loopback_is_allowed(
    loopback_allowed: Api, named_receiver: HttpReceiver
) -> None:
    # the control: the receiver, its certificate and the name do work
    await save_named_channels(loopback_allowed, named_receiver)

    await loopback_allowed.ok(EMIT, {"input": {"type": "refresh_failed", "title": "disk"}})

    nodes = await settled(loopback_allowed, 3)
    assert {n["status"] for n in nodes} == {"DELIVERED"}
    assert len(named_receiver.requests_to("/named")) == 3


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("https://127.0.0.1:{port}", "127.0.0.1 is a loopback address"),
        ("https://localhost:{port}", "localhost is always this host, a loopback address"),
        ("https://{name}:{port}", "{name} resolves to 127.0.0.1, a loopback address"),
        ("https://[::ffff:7f00:1]:{port}", "::ffff:7f00:1 is an IPv4-mapped address of 127.0.0.1"),
    ],
)
async def test_the_telegram_api_base_goes_through_the_policy_at_each_attempt(
    tmp_path: Path,
    database_url: str,
    named_ca: LocalCA,
    named_receiver: HttpReceiver,
    base: str,
    says: str,
) -> None:
    if "{name}" in base and LOOPBACK_NAME is None:
        pytest.skip("no host name here resolves to loopback only")
    api_base = base.format(port=named_receiver.port, name=LOOPBACK_NAME)
    async for api in app_with(tmp_path, database_url, named_ca, (), telegram_api_base=api_base):
        channel_id = await save(api, "Telegram", {"botToken": BOT, "chatId": "42"})

        payload = (await api.ok(SEND_TEST, {"id": channel_id}))["sendTest"]

        [result] = payload["results"]
        assert result["ok"] is False
        assert result["error"].startswith(
            f"destination not allowed: {says.format(name=LOOPBACK_NAME)}"
        )
        assert BOT.split(":")[1] not in result["error"]
    assert named_receiver.requests == []
