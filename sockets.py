"""The TCP sockets Tocsin makes itself: made as TCP (protocol IPPROTO_TCP) with Nagle's
algorithm off.

asyncio turns TCP_NODELAY on only for sockets whose protocol is IPPROTO_TCP; a socket
made as ``socket.socket(family, SOCK_STREAM)`` has protocol 0, and so has every
connection accepted on it. uvicorn writes a response's head and body separately, so on
such a connection the body waited for the client's delayed ACK: 40 ms a request on a
keep-alive connection."""

from __future__ import annotations

import socket

from tocsin.errors import ConfigurationError

__all__ = ["listen_socket", "tcp_socket"]


def tcp_socket(family: socket.AddressFamily) -> socket.socket:
    """A TCP socket of ``family`` that sends small writes at once."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port for a server to listen on (connections it accepts send
    at once too); a port that is taken is a ConfigurationError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = tcp_socket(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
