"""The destination (SSRF) guard: which addresses Tocsin may connect to.

Every address a destination resolves to must be public, unless it lies inside
``TOCSIN_ALLOWED_PRIVATE_NETWORKS``. Private, loopback, link-local, multicast,
reserved and unspecified addresses are refused, IPv4-mapped IPv6 included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from tocsin.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_allowed(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """True when Tocsin may connect to ``address``."""
    address = _unmapped(address)
    if any(address in network for network in allowed):
        return True
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL host names literally, or None for a DNS name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def literal_destination_allowed(url: str, allowed: Sequence[IPNetwork]) -> bool:
    """False when the URL names a refused address literally (checked again at each attempt)."""
    host = urlsplit(url).hostname or ""
    if host.lower() in {"localhost", "localhost.localdomain"} or host.lower().endswith(
        ".localhost"
    ):
        return any(ipaddress.ip_address("127.0.0.1") in n for n in allowed)
    address = literal_address(host)
    return address is None or address_allowed(address, allowed)


def url_allowed_scheme(url: str, allowed: Sequence[IPNetwork]) -> bool:
    """https always; http only to a literal address inside the allowed private networks."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return any(ipaddress.ip_address("127.0.0.1") in n for n in allowed)
    address = literal_address(host)
    return address is not None and any(_unmapped(address) in n for n in allowed)


class DestinationNotAllowed(OSError):
    """A destination names or resolves only to addresses Tocsin may not connect to.

    An ``OSError`` so that connection libraries treat it like a failed lookup and
    keep it in the exception chain; ``reason`` is safe to show to users.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def address_kind(address: IPAddress) -> str:
    """How a refused address is described to users: "a loopback address", …"""
    address = _unmapped(address)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    return "a non-public address"


def refuse_literal(host: str, address: IPAddress) -> DestinationNotAllowed:
    return DestinationNotAllowed(f"destination not allowed: {host} is {address_kind(address)}")


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
    kind = address_kind(addresses[0])
    raise DestinationNotAllowed(f"destination not allowed: {host} resolves to {kind}")
