"""The HTTP client's destination guard, redirects and failure mapping, against a real receiver."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.channels import LOOPBACK_ONLY, MakeDestination, MakeMessage
from tests.channels.loopback_names import loopback_name
from tests.peers import HttpReceiver, LocalCA
from tocsin.channels.base import SendContext, SendResult
from tocsin.channels.egress import DestinationNotAllowed
from tocsin.channels.http import GuardedResolver, build_http_client, parse_retry_after
from tocsin.channels.webhook import WebhookSender
from tocsin.settings import IPNetwork

NOTHING_ALLOWED: tuple[IPNetwork, ...] = ()
LOOPBACK_NAME = loopback_name()


async def send_to(
    url: str,
    make_message: MakeMessage,
    make_destination: MakeDestination,
    *,
    allowed: Sequence[IPNetwork],
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 2.0,
) -> SendResult:
    """Send one webhook through a client built with exactly ``allowed`` networks."""
    async with build_http_client(
        timeout=timeout, allowed_networks=allowed, ssl_context=ssl_context
    ) as client:
        context = SendContext(
            http=client,
            timeout=timeout,
            message_prefix="[Tocsin]",
            telegram_api_base="https://api.telegram.org",
            allowed_networks=allowed,
            ssl_context=ssl_context,
        )
        destination = make_destination("WEBHOOK", secrets={"url": url})
        return await WebhookSender().send(destination, make_message(), context)


async def test_literal_loopback_is_refused_when_not_allowed(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await send_to(
        receiver.url("/guard"), make_message, make_destination, allowed=NOTHING_ALLOWED
    )

    assert not result.ok
    assert result.error == "destination not allowed: 127.0.0.1 is a loopback address"
    assert not result.retryable
    assert receiver.requests == []


async def test_literal_loopback_is_allowed_inside_allowed_networks(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await send_to(
        receiver.url("/guard"), make_message, make_destination, allowed=LOOPBACK_ONLY
    )

    assert result.ok, result.error
    assert result.status_code == 200
    assert len(receiver.requests_to("/guard")) == 1


async def test_other_allowed_networks_do_not_open_loopback(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await send_to(
        receiver.url("/guard"),
        make_message,
        make_destination,
        allowed=(ipaddress.ip_network("10.0.0.0/8"),),
    )

    assert result.error == "destination not allowed: 127.0.0.1 is a loopback address"
    assert receiver.requests == []


async def test_the_name_localhost_is_refused_before_resolution(
    https_receiver: HttpReceiver,
    ca: LocalCA,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    for host in ("localhost", "LocalHost.", "app.localhost"):
        url = https_receiver.url("/guard", host=host)

        result = await send_to(
            url,
            make_message,
            make_destination,
            allowed=NOTHING_ALLOWED,
            ssl_context=ca.client_context(),
        )

        assert not result.ok
        assert result.error == (
            f"destination not allowed: {host.lower()} is always this host, a loopback address"
        )
        assert not result.retryable
    assert https_receiver.requests == []


@pytest.mark.skipif(LOOPBACK_NAME is None, reason="no host name here resolves to loopback only")
async def test_a_name_that_resolves_to_loopback_is_refused_after_resolution(
    https_receiver: HttpReceiver,
    ca: LocalCA,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    url = https_receiver.url("/guard", host=str(LOOPBACK_NAME))

    result = await send_to(
        url,
        make_message,
        make_destination,
        allowed=NOTHING_ALLOWED,
        ssl_context=ca.client_context(),
    )

    assert result.error == (
        f"destination not allowed: {LOOPBACK_NAME} resolves to 127.0.0.1, a loopback address"
    )
    assert not result.retryable
    assert https_receiver.requests == []


async def test_a_name_resolving_to_an_allowed_address_connects_and_verifies_the_name(
    https_receiver: HttpReceiver,
    ca: LocalCA,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    url = https_receiver.url("/guard", host="localhost")

    result = await send_to(
        url, make_message, make_destination, allowed=LOOPBACK_ONLY, ssl_context=ca.client_context()
    )

    assert result.ok, result.error
    [request] = https_receiver.requests_to("/guard")
    assert request.headers["host"] == f"localhost:{https_receiver.port}"


async def test_ipv4_mapped_ipv6_loopback_is_refused(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    url = f"http://[::ffff:127.0.0.1]:{receiver.port}/guard"

    result = await send_to(url, make_message, make_destination, allowed=NOTHING_ALLOWED)

    assert result.error == (
        "destination not allowed: ::ffff:127.0.0.1 is an IPv4-mapped address of 127.0.0.1,"
        " a loopback address"
    )
    assert not result.retryable
    assert receiver.requests == []


# Every spelling getaddrinfo/inet_aton read as an internal address, as a URL host
LITERAL_FORMS = [
    ("127.1", "127.1 is 127.0.0.1, a loopback address"),
    ("2130706433", "2130706433 is 127.0.0.1, a loopback address"),
    ("0x7f.1", "0x7f.1 is 127.0.0.1, a loopback address"),
    ("0177.0.0.1", "0177.0.0.1 is 127.0.0.1, a loopback address"),
    ("0", "0 is 0.0.0.0, the unspecified address"),
    ("127.0.0.1.", "127.0.0.1. is 127.0.0.1, a loopback address"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1 is an IPv4-mapped address of 127.0.0.1, a loopback address"),
    ("[2002:7f00:1::]", "2002:7f00:1:: is a 6to4 address of 127.0.0.1, a loopback address"),
    ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1 is a NAT64 address of 127.0.0.1, a loopback address"),
    (
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "2001:0:4136:e378:8000:63bf:80ff:fffe is a Teredo address whose client is 127.0.0.1,"
        " a loopback address",
    ),
]


@pytest.mark.parametrize(("host", "says"), LITERAL_FORMS)
async def test_every_spelling_of_a_literal_internal_address_is_refused_at_send(
    host: str,
    says: str,
    receiver: HttpReceiver,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # as a row saved before save refused these would be sent
    url = f"http://{host}:{receiver.port}/guard"

    result = await send_to(url, make_message, make_destination, allowed=NOTHING_ALLOWED)

    assert result.error == f"destination not allowed: {says}"
    assert not result.retryable
    assert receiver.requests == []


async def test_a_host_that_ends_in_a_number_but_is_no_address_is_refused(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    url = f"http://1.2.3.256:{receiver.port}/guard"

    result = await send_to(url, make_message, make_destination, allowed=LOOPBACK_ONLY)

    assert result.error == "destination not allowed: 1.2.3.256 is not a valid IP address"
    assert receiver.requests == []


async def test_plain_http_to_a_public_name_is_refused(
    make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await send_to(
        "http://hooks.example.com/x", make_message, make_destination, allowed=LOOPBACK_ONLY
    )

    assert result.error is not None
    assert result.error.startswith("destination not allowed: plain http://")
    assert not result.retryable


async def test_a_redirect_is_not_followed(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond("/moved", 302, headers={"location": receiver.url("/target")})
    destination = make_destination("WEBHOOK", secrets={"url": receiver.url("/moved")})

    result = await WebhookSender().send(destination, make_message(), context)

    assert not result.ok
    assert result.error == "redirect not followed (HTTP 302)"
    assert result.status_code == 302
    assert not result.retryable
    assert receiver.requests_to("/target") == []


async def test_untrusted_certificate_fails_clearly(
    https_receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    result = await send_to(
        https_receiver.url("/guard"),
        make_message,
        make_destination,
        allowed=LOOPBACK_ONLY,
        ssl_context=ssl.create_default_context(),
    )

    assert (
        result.error == f"TLS certificate verification failed for 127.0.0.1:{https_receiver.port}"
    )
    assert not result.retryable
    assert https_receiver.requests == []


async def test_refused_connection_is_retryable(
    make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nobody"

    result = await send_to(url, make_message, make_destination, allowed=LOOPBACK_ONLY)

    assert result.error == f"connection refused by 127.0.0.1:{port}"
    assert result.retryable


async def test_a_hanging_receiver_times_out_within_the_attempt_budget(
    receiver: HttpReceiver, make_message: MakeMessage, make_destination: MakeDestination
) -> None:
    receiver.respond("/slow", hang=5)

    result = await send_to(
        receiver.url("/slow"), make_message, make_destination, allowed=LOOPBACK_ONLY, timeout=0.3
    )

    assert result.error == "timed out after 0.3s"
    assert result.retryable
    assert 250 <= result.latency_ms < 2000


async def test_connections_are_pooled(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = make_destination("WEBHOOK", secrets={"url": receiver.url("/pooled")})

    for _ in range(3):
        assert (await WebhookSender().send(destination, make_message(), context)).ok

    ports = {request.client[1] for request in receiver.requests_to("/pooled")}
    assert len(ports) == 1


def test_retry_after_reads_seconds_and_http_dates_and_is_capped() -> None:
    now = datetime(2026, 6, 12, 9, 15, tzinfo=UTC)
    in_two_minutes = format_datetime(now + timedelta(minutes=2), usegmt=True)

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(in_two_minutes, now=now) == 120.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert parse_retry_after("86400") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (429, True), (500, True), (503, True)],
)
async def test_status_codes_map_to_retryable_or_final(
    status: int,
    retryable: bool,
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond("/status", status, body="no")
    destination = make_destination("WEBHOOK", secrets={"url": receiver.url("/status")})

    result = await WebhookSender().send(destination, make_message(), context)

    assert not result.ok
    assert result.status_code == status
    assert result.retryable is retryable
    assert result.error == f"HTTP {status}: no"


class FixedResolver(AbstractResolver):
    """Answers every name with the same addresses, as a DNS server under test control would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_keeps_only_allowed_addresses() -> None:
    resolver = GuardedResolver(LOOPBACK_ONLY, FixedResolver("10.0.0.5", "127.0.0.1", "::1"))

    results = await resolver.resolve("mixed.example", 443)

    assert [result["host"] for result in results] == ["127.0.0.1"]


async def test_resolver_refuses_a_name_with_no_allowed_address() -> None:
    resolver = GuardedResolver(LOOPBACK_ONLY, FixedResolver("10.0.0.5", "fd00::1"))

    with pytest.raises(DestinationNotAllowed) as refused:
        await resolver.resolve("example.internal", 443)

    assert refused.value.reason == (
        "destination not allowed: example.internal resolves to 10.0.0.5, a private address"
    )
