"""Tests of ``tocsin.channels`` against real peers on loopback; names shared by the test modules."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from tocsin.channels.base import Destination, Message

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.0/8"),)
"The allowed networks of every test context: the peers listen on 127.0.0.1."

CANARY = "CANARY-s3cr3t"
"Part of every secret in the tests; it must never show up in an error."

MakeMessage = Callable[..., Message]
MakeDestination = Callable[..., Destination]
