"""Every TCP socket Tocsin makes itself turns Nagle's algorithm off.

uvicorn writes a response's head and body in two writes. On a socket made as
``socket.socket(family, SOCK_STREAM)`` (protocol 0) asyncio does not set TCP_NODELAY,
so on a keep-alive connection the body waited for the client's delayed ACK: 40 ms
per request (issue 11: 21 emits/s from one client; curl, a new connection each
time, never saw it)."""

from __future__ import annotations

import ast
import asyncio
import socket
from pathlib import Path

import pytest

from tocsin.errors import ConfigurationError
from tocsin.sockets import listen_socket, tcp_socket

ROOT = Path(__file__).resolve().parents[1]


async def _accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted the way uvicorn accepts (create_server(sock=))."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    host, port = listener.getsockname()[:2]
    _, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(seen, 5)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_connections_to_a_listening_socket_do_not_wait_for_acks() -> None:
    assert await _accepted_nodelay(listen_socket("127.0.0.1", 0)) != 0


async def test_the_old_way_of_making_the_socket_left_nagle_on() -> None:
    """The reproduction: what cli.py did before, so this file shows what it guards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    assert await _accepted_nodelay(sock) == 0


def test_a_taken_port_is_a_configuration_error() -> None:
    first = listen_socket("127.0.0.1", 0)
    first.listen()
    port = first.getsockname()[1]
    with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
        listen_socket("127.0.0.1", port)
    first.close()


def test_an_outgoing_socket_sends_at_once() -> None:
    with tcp_socket(socket.AF_INET) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def _makes_sockets(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "socket.socket":
            return True
    return False


def test_no_other_module_makes_a_tcp_socket_by_hand() -> None:
    modules = [
        p
        for p in ROOT.rglob("*.py")
        if not {"tests", "bench", "scripts", ".venv", "build"} & set(p.relative_to(ROOT).parts)
    ]
    assert ROOT / "cli.py" in modules
    assert [p.relative_to(ROOT).as_posix() for p in modules if _makes_sockets(p)] == ["sockets.py"]


async def test_the_test_receivers_answer_keep_alive_requests_at_once() -> None:
    """The suite's own HTTP receiver: on a protocol-0 socket every delivery to it waited
    40 ms, and the 32-client load test spent 30 s draining at 180 deliveries/s."""
    from tests.peers import _bound_socket

    assert await _accepted_nodelay(_bound_socket()) != 0
