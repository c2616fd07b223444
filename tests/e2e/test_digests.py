"""Issue 9, acceptance 1 and 2, against a real `tocsin serve` (one per module) and real
receivers: a DIGEST channel gets a CRITICAL event at once and three MEDIUM events as
exactly one digest, for every kind; a restart before the period ends loses and repeats
none of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.server import (
    EMIT,
    SIGNING_SECRET,
    TocsinServer,
    e2e_database_url,
    server_env,
)
from tests.peers import HttpReceiver, SmtpServer
from tocsin.channels.base import Kind
from tocsin.channels.registry import KINDS

MEDIUM_SECONDS = 2
LOW_SECONDS = 5
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHAT = "-1001234567890"


@pytest.fixture(scope="module")
async def server(
    template_database: str, tmp_path_factory: pytest.TempPathFactory, _receiver: HttpReceiver
) -> AsyncIterator[TocsinServer]:
    data_dir = tmp_path_factory.mktemp("digests")
    env = server_env(
        data_dir,
        database_url=await e2e_database_url(template_database, data_dir),
        TOCSIN_DIGEST_INTERVALS=f"MEDIUM={MEDIUM_SECONDS},LOW={LOW_SECONDS}",
        TOCSIN_TELEGRAM_API_BASE=_receiver.base_url,
        TOCSIN_SLACK_API_BASE=_receiver.base_url,
    )
    async with TocsinServer(env, log_dir=data_dir) as running:
        yield running


def channel_input(kind: str, receiver: HttpReceiver, smtp: SmtpServer) -> dict[str, Any]:
    """A channel of ``kind`` pointed at the test's receivers."""
    path = f"/digest/{kind.lower()}"
    inputs: dict[str, dict[str, Any]] = {
        "SLACK": {"webhookUrl": receiver.url(path)},
        "DISCORD": {"webhookUrl": receiver.url(path)},
        "TEAMS": {"webhookUrl": receiver.url(path)},
        "TELEGRAM": {"botToken": BOT, "chatId": CHAT},
        "WEBHOOK": {
            "url": receiver.url(path),
            "signingSecret": SIGNING_SECRET,
            "headers": {"X-Team": "data"},
        },
        "EMAIL": {
            "to": ["ops@example.com"],
            "smtpHost": "localhost",
            "smtpPort": smtp.port,
            "security": "STARTTLS",
            "username": smtp.username,
            "password": smtp.password,
            "fromAddress": "tocsin@example.com",
            "verifyTls": False,  # the server process does not trust the test CA
        },
    }
    return inputs[kind]


async def save_digest_channel(
    server: TocsinServer, kind: str, fields: dict[str, Any], case: str
) -> str:
    """A DIGEST channel of ``kind`` that gets only the events of metadata case=``case``."""
    label = KINDS[kind].label
    data = await server.ok(
        f"mutation($i: {label}ChannelInput!) {{ s: save{label}Channel(input: $i) "
        "{ channel { id configured } errors { field code message } } }",
        {"i": {**fields, "mode": "DIGEST", "metadataMatch": {"case": [case]}}},
    )
    assert data["s"]["errors"] == [] and data["s"]["channel"]["configured"], data
    channel_id: str = data["s"]["channel"]["id"]
    return channel_id


async def emit(server: TocsinServer, case: str, title: str, event_type: str, **extra: Any) -> str:
    fields = {"type": event_type, "title": title, "metadata": {"case": case}, **extra}
    data = await server.ok(EMIT, {"input": fields})
    assert data["emitEvent"]["errors"] == [], data
    event_id: str = data["emitEvent"]["event"]["id"]
    return event_id


class Inbox:
    """What one kind's receiver got, as texts (a request's body, a mail's text part)."""

    def __init__(self, kind: str, receiver: HttpReceiver, smtp: SmtpServer) -> None:
        self.kind, self.receiver, self.smtp = kind, receiver, smtp

    def texts(self) -> list[str]:
        if self.kind == "EMAIL":
            return [mail.text_part for mail in self.smtp.messages]
        path = f"/bot{BOT}/sendMessage" if self.kind == "TELEGRAM" else self.path
        return [r.text for r in self.receiver.requests_to(path)]

    @property
    def path(self) -> str:
        return f"/digest/{self.kind.lower()}"

    async def wait_for(self, count: int, timeout: float) -> list[str]:
        async def enough() -> list[str] | None:
            texts = self.texts()
            return texts if len(texts) >= count else None

        return await poll(enough, timeout)


async def poll(check: Callable[[], Any], timeout: float) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s (last: {value!r})")
        await asyncio.sleep(0.05)


def holding(texts: list[str], titles: list[str]) -> list[str]:
    """The texts that name any of ``titles``."""
    return [text for text in texts if any(title in text for title in titles)]


def renders_digests(kind: str) -> bool:
    return type(KINDS[kind]).render_digest is not Kind.render_digest


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_critical_at_once_and_three_medium_as_exactly_one_digest(
    server: TocsinServer, receiver: HttpReceiver, smtp_server: SmtpServer, kind: str
) -> None:
    if not renders_digests(kind):
        pytest.skip(f"{kind} does not render digests yet")
    case = f"a1-{kind}"
    await save_digest_channel(server, kind, channel_input(kind, receiver, smtp_server), case)
    inbox = Inbox(kind, receiver, smtp_server)
    # when three MEDIUM events arrive, then a CRITICAL one
    medium = [f"{kind} medium {n}" for n in range(3)]
    for title in medium:
        await emit(server, case, title, "proposal_ready")
    await emit(server, case, f"{kind} critical", "refresh_failed", priority="CRITICAL")
    # then the CRITICAL one arrives at once (before the MEDIUM period is over), alone
    [first, *_] = await inbox.wait_for(1, timeout=MEDIUM_SECONDS + 5)
    assert f"{kind} critical" in first and holding([first], medium) == []
    # and the three MEDIUM ones as one message holding all three
    texts = await inbox.wait_for(2, timeout=MEDIUM_SECONDS + 8)
    [digest] = holding(texts, medium)
    assert all(title in digest for title in medium), digest
    if kind == "WEBHOOK":
        check_webhook_digest(receiver, inbox.path, medium)
    await asyncio.sleep(1.0)
    assert len(inbox.texts()) == 2


def check_webhook_digest(receiver: HttpReceiver, path: str, titles: list[str]) -> None:
    """The section 7 body, its Standard Webhooks signature and the custom headers."""
    request = receiver.requests_to(path)[-1]
    body = Webhook(SIGNING_SECRET).verify(request.body, request.headers)
    assert body["digest"] is True and body["id"] == request.headers["webhook-id"]
    assert {"id", "digest", "period_start", "period_end", "events", "tocsin_version"} <= set(body)
    assert [event["title"] for event in body["events"]] == titles
    assert all(event["event_type"] == "proposal_ready" for event in body["events"])
    assert request.headers["x-team"] == "data"


DIGEST_STATUS = """query($id: ID!) { event(id: $id) { deliveries { status
  digest { status eventCount } } } }"""


@pytest.mark.parametrize("how", ["clean", "kill"])
async def test_a_restart_before_the_period_ends_sends_exactly_one_digest_with_all(
    server: TocsinServer, receiver: HttpReceiver, how: str
) -> None:
    case = f"a2-{how}"
    path = f"/restart/{how}"
    fields = {"url": receiver.url(path), "signingSecret": SIGNING_SECRET}
    await save_digest_channel(server, "WEBHOOK", fields, case)
    # given three LOW events waiting in their digest
    titles = [f"low {how} {n}" for n in range(3)]
    ids = [await emit(server, case, title, "deploy_succeeded") for title in titles]
    data = await server.ok(DIGEST_STATUS, {"id": ids[0]})
    [member] = data["event"]["deliveries"]
    assert member["status"] == "BATCHED" and member["digest"]["status"] == "OPEN", data
    assert member["digest"]["eventCount"] == 3
    # when the server restarts before the period is over
    if how == "kill":
        server.kill()
    else:
        await server.stop_cleanly()
    assert receiver.requests_to(path) == []
    await server.start()
    # then exactly one digest with all three arrives, and nothing more
    [request] = await receiver.wait_for_requests(1, path=path, timeout=LOW_SECONDS + 8)
    body = Webhook(SIGNING_SECRET).verify(request.body, request.headers)
    assert [event["event_id"] for event in body["events"]] == ids
    await asyncio.sleep(1.0)
    assert len(receiver.requests_to(path)) == 1
