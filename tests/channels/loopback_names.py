"""A host name that resolves to loopback only, for the tests that such a name is refused
after resolution: ``localhost`` itself is refused before (it always means this host)."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path

from tocsin.channels.egress import is_loopback_name

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?\Z")


def _candidates() -> list[str]:
    names: list[str] = []
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            names += fields[1:]
    return [*names, socket.gethostname()]


def _resolves_to_loopback_only(name: str) -> bool:
    try:
        infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}
    return bool(addresses) and all(address.is_loopback for address in addresses)


def loopback_name() -> str | None:
    """A name save accepts (not ``localhost``) that resolves only to loopback, or None."""
    for name in _candidates():
        if _NAME.match(name) and not is_loopback_name(name) and _resolves_to_loopback_only(name):
            return name
    return None
