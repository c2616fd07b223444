"""The senders' one way out (``GuardedClient.exchange``): straight through the guarded
transport, with what the client used to add (User-Agent, decoding), and nothing it
should not keep (cookies) or remember (a refusal)."""

from __future__ import annotations

import gzip

import pytest

from tests.channels import LOOPBACK_ONLY
from tests.peers import HttpReceiver
from tocsin import __version__
from tocsin.channels.egress import DestinationNotAllowed
from tocsin.channels.http import build_http_client, checked_url


async def test_a_post_carries_tocsin_user_agent_and_the_callers_headers(
    receiver: HttpReceiver,
) -> None:
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        reply, body = await client.exchange(
            receiver.url("/x"),
            content=b'{"a":1}',
            headers={"Content-Type": "application/json", "X-Kind": "test"},
            allowed=LOOPBACK_ONLY,
        )
    assert (reply.status_code, body) == (200, b"ok")
    (request,) = receiver.requests_to("/x")
    assert request.headers["user-agent"] == f"Tocsin/{__version__}"
    assert request.headers["x-kind"] == "test"
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"a":1}'


async def test_no_cookie_set_by_one_receiver_travels_with_the_next_post(
    receiver: HttpReceiver,
) -> None:
    receiver.respond("/set", headers={"Set-Cookie": "session=abc; Path=/"})
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        for path in ("/set", "/next"):
            await client.exchange(
                receiver.url(path), content=b"{}", headers={}, allowed=LOOPBACK_ONLY
            )
    assert "cookie" not in receiver.requests_to("/next")[0].headers


async def test_a_gzip_answer_is_read_decoded(receiver: HttpReceiver) -> None:
    receiver.respond(
        "/gz", 400, body=gzip.compress(b"bad channel"), headers={"Content-Encoding": "gzip"}
    )
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        reply, body = await client.exchange(
            receiver.url("/gz"), content=b"{}", headers={}, allowed=LOOPBACK_ONLY
        )
    assert (reply.status_code, body) == (400, b"bad channel")


async def test_the_senders_policy_holds_even_when_the_client_allows_more(
    receiver: HttpReceiver,
) -> None:
    url = receiver.url("/both")
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        await client.exchange(url, content=b"{}", headers={}, allowed=LOOPBACK_ONLY)
        # the URL passed once; a policy without loopback still refuses it
        with pytest.raises(DestinationNotAllowed):
            await client.exchange(url, content=b"{}", headers={}, allowed=())
    assert len(receiver.requests_to("/both")) == 1


def test_a_refusal_is_not_remembered_as_a_pass() -> None:
    url = "http://127.0.0.1:9/refused"
    for _ in range(2):
        with pytest.raises(DestinationNotAllowed):
            checked_url(url, ())
    target, authorization = checked_url(url, LOOPBACK_ONLY)
    assert (str(target), authorization) == (url, None)


def test_credentials_in_the_url_become_basic_authorization_and_leave_the_url() -> None:
    target, authorization = checked_url("http://hook:s3cret@127.0.0.1:9/p", LOOPBACK_ONLY)
    assert str(target) == "http://127.0.0.1:9/p"
    assert authorization == "Basic aG9vazpzM2NyZXQ="
