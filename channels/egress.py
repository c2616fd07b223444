"""The egress (SSRF) policy: which addresses Tocsin may connect to, and why not.

One policy, used at save (``resolvers/validation.py``) and at every attempt
(``channels/http.py``'s resolver and transport, ``channels/email.py``'s SMTP
connection). An address is allowed when it lies inside
``TOCSIN_ALLOWED_PRIVATE_NETWORKS``, or when no rule below refuses it:

- IPv4: "this network" 0.0.0.0/8 (0.0.0.0 reaches this host), private,
  shared/CGNAT 100.64.0.0/10, loopback, link-local, IETF protocol assignments
  192.0.0.0/24, documentation, the 6to4 relay anycast, benchmarking 198.18.0.0/15,
  multicast, reserved 240.0.0.0/4 and broadcast;
- IPv6: unspecified, loopback, discard-only, IETF protocol assignments 2001::/23,
  documentation, segment routing, unique-local, link-local, site-local,
  multicast and everything outside global unicast 2000::/3;
- IPv6 forms that carry an IPv4 address are judged by that address as well:
  IPv4-mapped and -translated (the same host: the IPv4 alone decides),
  IPv4-compatible (deprecated: always refused), NAT64 64:ff9b::/96 (allowed when
  the IPv4 is public, as DNS64 answers), local-use NAT64 64:ff9b:1::/48, 6to4
  2002::/16 (allowed when the IPv4 is public) and Teredo 2001::/32 (always
  refused; the client's IPv4 is named when it is internal).

The ranges are spelled out here rather than taken from ``ipaddress``'s
``is_private``/``is_global``, whose answers change between Python releases.

A host names an address literally in every spelling ``getaddrinfo`` and
``inet_aton`` accept, which is more than ``ipaddress`` reads: ``2130706433``,
``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``0`` all mean an IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from tocsin.errors import DestinationNotAllowed, NotAnAddress
from tocsin.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "DestinationNotAllowed",
    "IPAddress",
    "NotAnAddress",
    "address_allowed",
    "allowed_resolved",
    "host_refusal",
    "in_allowed_networks",
    "is_loopback_name",
    "parse_host",
    "refusal",
    "url_allowed_scheme",
]


# -- reading a host ----------------------------------------------------------------------

_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)\Z")


def parse_host(host: str) -> IPAddress | None:
    """The IP address ``host`` names literally, or None for a DNS name.

    Brackets, an IPv6 zone (``%eth0``) and one trailing dot are accepted; IPv4 may be
    written in any form ``inet_aton`` reads (1 to 4 parts, each decimal, ``0x`` hex or
    ``0`` octal, the last filling the remaining bytes). A host whose last label is a
    number is IPv4 or nothing (as in the WHATWG URL standard): ``NotAnAddress`` then.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise NotAnAddress(f"{host} is not a valid IPv6 address") from None
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not parts or not _NUMBER.match(parts[-1]):
        if text.replace(".", "").isdigit():
            # aiohttp connects to such a host without resolving it ("127.0.0.1..", "١٢٧")
            raise NotAnAddress(f"{host} is not a valid IPv4 address")
        return None
    value = _ipv4_number(parts)
    if value is None:
        raise NotAnAddress(f"{host} is not a valid IPv4 address")
    return ipaddress.IPv4Address(value)


def _ipv4_number(parts: list[str]) -> int | None:
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        if len(part) > 40 or not _NUMBER.match(part):  # 40: beyond any 32-bit spelling
            return None
        if part[:2] in {"0x", "0X"}:
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return value


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_name(host: str) -> bool:
    """``localhost`` and the names that always mean this host, whatever DNS says."""
    name = host.lower().rstrip(".")
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


# -- the rules ---------------------------------------------------------------------------


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


_IPV4_RULES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_nets("255.255.255.255/32"), "the broadcast address"),
    (_nets("0.0.0.0/32"), "the unspecified address"),
    (_nets("0.0.0.0/8"), 'a "this network" address'),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private address"),
    (_nets("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_nets("127.0.0.0/8"), "a loopback address"),
    (_nets("169.254.0.0/16"), "a link-local address"),
    (_nets("192.0.0.0/24"), "an IETF protocol address"),
    (_nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"), "a documentation address"),
    (_nets("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_nets("198.18.0.0/15"), "a benchmarking address"),
    (_nets("224.0.0.0/4"), "a multicast address"),
    (_nets("240.0.0.0/4"), "a reserved address"),
)

_IPV6_RULES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_nets("::/128"), "the unspecified address"),
    (_nets("::1/128"), "a loopback address"),
    (_nets("100::/64"), "a discard-only address"),
    (_nets("2001:db8::/32", "3fff::/20"), "a documentation address"),
    (_nets("2001::/23"), "an IETF protocol address"),
    (_nets("5f00::/16"), "a segment-routing (SRv6) address"),
    (_nets("fc00::/7"), "a unique-local (private) address"),
    (_nets("fe80::/10"), "a link-local address"),
    (_nets("fec0::/10"), "a site-local address"),
    (_nets("ff00::/8"), "a multicast address"),
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def _is_compatible(address: ipaddress.IPv6Address) -> bool:
    return address in _COMPATIBLE and int(address) > 1  # not :: or ::1


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _same_host(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or -translated IPv6 address reaches."""
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _MAPPED or address in _TRANSLATED
    ):
        return _low32(address)
    return None


def in_allowed_networks(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """True when the operator allowed ``address`` (an IPv4-mapped one by its IPv4)."""
    address = ipaddress.ip_address(str(address).split("%", 1)[0])
    inner = _same_host(address)
    return any(
        address in network or (inner is not None and inner in network) for network in allowed
    )


def _rule(address: IPAddress) -> str | None:
    """Why ``address`` is refused, ignoring the allowed networks; None when it is public."""
    if isinstance(address, ipaddress.IPv4Address):
        return next((name for nets, name in _IPV4_RULES if any(address in n for n in nets)), None)
    inner = _same_host(address)
    if inner is not None:
        kind = "IPv4-mapped" if address in _MAPPED else "IPv4-translated"
        why = _rule(inner)
        return f"an {kind} address of {inner}, {why}" if why else None
    if _is_compatible(address):
        why = _rule(_low32(address))
        return f"a deprecated IPv4-compatible address of {_low32(address)}" + (
            f", {why}" if why else ""
        )
    if address in _NAT64:
        why = _rule(_low32(address))
        return f"a NAT64 address of {_low32(address)}, {why}" if why else None
    if address in _NAT64_LOCAL:
        why = _rule(_low32(address))
        of = f" of {_low32(address)}, {why}" if why else ""
        return f"a local-use NAT64 address{of}"
    if address in _SIX_TO_FOUR:
        embedded = ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
        why = _rule(embedded)
        return f"a 6to4 address of {embedded}, {why}" if why else None
    if address in _TEREDO:
        client = ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)
        server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFFFFFF)
        for role, embedded in (("client", client), ("server", server)):
            why = _rule(embedded)
            if why:
                return f"a Teredo address whose {role} is {embedded}, {why}"
        return "a Teredo tunnel address"
    for nets, name in _IPV6_RULES:
        if any(address in n for n in nets):
            return name
    if address not in _GLOBAL_UNICAST:
        return "a reserved address"
    return None


def refusal(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why Tocsin may not connect to ``address`` ("a loopback address", …), None if it may."""
    if in_allowed_networks(address, allowed):
        return None
    return _rule(address)


def address_allowed(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """True when Tocsin may connect to ``address``."""
    return refusal(address, allowed) is None


def _embeds_ipv4(address: IPAddress) -> bool:
    if not isinstance(address, ipaddress.IPv6Address):
        return False
    transition = (_MAPPED, _TRANSLATED, _NAT64, _NAT64_LOCAL, _SIX_TO_FOUR, _TEREDO)
    return _is_compatible(address) or any(address in network for network in transition)


def _spelled(host: str, address: IPAddress, why: str) -> str:
    """ "2130706433 is 127.0.0.1, a loopback address"; "127.0.0.1 is a loopback address"."""
    written = host.strip().strip("[]").lower()
    # An IPv6 form that carries an IPv4 address has the rule name it already.
    if written == str(address) or _embeds_ipv4(address):
        return f"{written} is {why}"
    return f"{written} is {address}, {why}"


def host_refusal(host: str, allowed: Sequence[IPNetwork]) -> str | None:
    """Why a host, as written, may not be used ("0x7f.1 is 127.0.0.1, a loopback address");
    None when it is allowed or a DNS name (checked again after resolution).

    Raises ``NotAnAddress`` for a host that looks like an address but is none.
    """
    address = parse_host(host)
    if address is None:
        if is_loopback_name(host):
            why = refusal(ipaddress.IPv4Address("127.0.0.1"), allowed)
            return f"{host.lower()} is always this host, {why}" if why else None
        return None
    why = refusal(address, allowed)
    return _spelled(host, address, why) if why else None


def check_host(host: str, allowed: Sequence[IPNetwork]) -> None:
    """Raise DestinationNotAllowed, naming the rule, when ``host`` as written may not be
    used; a DNS name passes here and is checked again after resolution."""
    try:
        refused = host_refusal(host, allowed)
    except NotAnAddress:
        raise DestinationNotAllowed(
            f"destination not allowed: {host} is not a valid IP address"
        ) from None
    if refused is not None:
        raise DestinationNotAllowed(f"destination not allowed: {refused}")


def allowed_resolved(
    host: str, addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]
) -> list[IPAddress]:
    """The addresses of ``host`` Tocsin may connect to; raises when there is none.

    Refused addresses are dropped rather than failing the whole name, so that
    ``localhost`` works with ``127.0.0.0/8`` allowed even when it also resolves to ``::1``.
    """
    permitted = [a for a in addresses if address_allowed(a, allowed)]
    if permitted:
        return permitted
    if not addresses:
        raise DestinationNotAllowed(f"destination not allowed: {host} has no address")
    first = addresses[0]
    why = refusal(first, allowed)
    raise DestinationNotAllowed(f"destination not allowed: {host} resolves to {first}, {why}")


def url_allowed_scheme(url: str, allowed: Sequence[IPNetwork]) -> bool:
    """https always; http only to a literal address inside the allowed private networks."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if is_loopback_name(host):
        return in_allowed_networks(ipaddress.IPv4Address("127.0.0.1"), allowed)
    try:
        address = parse_host(host)
    except NotAnAddress:
        return False
    return address is not None and in_allowed_networks(address, allowed)
