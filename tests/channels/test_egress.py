"""The egress policy itself: every spelling resolvers read, and what the allowed networks open."""

from __future__ import annotations

import ipaddress
import random
import socket

import pytest
from aiohttp.helpers import is_ip_address

from tocsin.channels import egress

NOTHING: tuple[egress.IPNetwork, ...] = ()


def _numeric(host: str) -> str | None:
    """What getaddrinfo makes of ``host`` without asking DNS; None when it is no address."""
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return str(ipaddress.ip_address(infos[0][4][0]))


def _spell(value: int, parts: int, rng: random.Random) -> str:
    """``value`` as inet_aton reads it: ``parts`` numbers, each decimal, hex or octal."""
    widths = {1: [4], 2: [1, 3], 3: [1, 1, 2], 4: [1, 1, 1, 1]}[parts]
    numbers, shift = [], 32
    for width in widths:
        shift -= 8 * width
        numbers.append((value >> shift) & ((1 << (8 * width)) - 1))
    spelled = []
    for number in numbers:
        base = rng.choice(["dec", "hex", "HEX", "oct"])
        pad = "0" * rng.choice([0, 0, 1, 3])
        if base == "dec":
            spelled.append(str(number))
        elif base == "oct":
            spelled.append("0" + pad + format(number, "o"))
        else:
            spelled.append(("0x" if base == "hex" else "0X") + pad + format(number, "x"))
    return ".".join(spelled)


def test_every_ipv4_spelling_getaddrinfo_reads_is_read_the_same() -> None:
    rng = random.Random(7)
    values = [0, 1, 0x7F000001, 0x0A000001, 0xA9FEA9FE, 0xFFFFFFFF] + [
        rng.getrandbits(32) for _ in range(300)
    ]
    checked = 0
    for value in values:
        for parts in (1, 2, 3, 4):
            host = _spell(value, parts, rng)
            expected = _numeric(host)
            assert expected == str(ipaddress.IPv4Address(value)), host  # the spelling is valid
            assert str(egress.parse_host(host)) == expected, host
            checked += 1
    assert checked == len(values) * 4


def test_nothing_getaddrinfo_reads_as_an_address_passes_for_a_name() -> None:
    # given strings made of what numeric hosts are made of, whenever getaddrinfo reads one
    # as an address, the policy reads the same address (never a DNS name)
    rng = random.Random(11)
    alphabet = "0123456789.xXabcdef"
    addresses = 0
    for _ in range(5000):
        host = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        expected = _numeric(host)
        if expected is None:
            continue
        assert str(egress.parse_host(host)) == expected, host
        addresses += 1
    assert addresses > 200  # the strings do exercise the numeric forms


@pytest.mark.parametrize(
    "host",
    ["::1", "::ffff:127.0.0.1", "0:0:0:0:0:ffff:7f00:1", "2002:7f00:1::", "fe80::1%lo", "::"],
)
def test_ipv6_literals_are_read_as_getaddrinfo_reads_them(host: str) -> None:
    address = egress.parse_host(f"[{host}]")
    assert address is not None
    assert str(address).split("%", 1)[0] == _numeric(host)


@pytest.mark.parametrize("host", ["example.com", "hooks.slack.com", "0x7f.example", "vm", "a.b1"])
def test_dns_names_are_names(host: str) -> None:
    assert egress.parse_host(host) is None


def test_an_allowed_network_opens_exactly_that_network() -> None:
    ten = (ipaddress.ip_network("10.0.0.0/8"),)
    assert egress.refusal(ipaddress.ip_address("10.1.2.3"), ten) is None
    assert egress.refusal(ipaddress.ip_address("::ffff:10.1.2.3"), ten) is None  # the same host
    assert egress.refusal(ipaddress.ip_address("192.168.0.1"), ten) == "a private address"
    # a NAT64 or 6to4 address reaches another host than the IPv4 inside it
    assert egress.refusal(ipaddress.ip_address("64:ff9b::a01:203"), ten) == (
        "a NAT64 address of 10.1.2.3, a private address"
    )
    assert egress.refusal(ipaddress.ip_address("2002:a01:203::"), ten) == (
        "a 6to4 address of 10.1.2.3, a private address"
    )


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::"]
)
def test_public_addresses_are_allowed_with_nothing_allowed(address: str) -> None:
    assert egress.refusal(ipaddress.ip_address(address), NOTHING) is None


def test_a_name_resolving_to_refused_addresses_only_names_the_first() -> None:
    addresses = [ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("::1")]

    with pytest.raises(egress.DestinationNotAllowed) as refused:
        egress.allowed_resolved("intranet.example", addresses, NOTHING)

    assert refused.value.reason == (
        "destination not allowed: intranet.example resolves to 10.0.0.5, a private address"
    )


def test_every_host_aiohttp_connects_to_unresolved_is_read_as_an_address_or_refused() -> None:
    # aiohttp skips the (guarded) resolver for a host with a colon or only digits and dots:
    # such a host must never pass for a DNS name
    rng = random.Random(13)
    alphabet = "0123456789.:abcdefx%١²"
    for _ in range(5000):
        host = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if not is_ip_address(host):
            continue
        try:
            assert egress.parse_host(host) is not None, host
        except egress.NotAnAddress:
            pass
