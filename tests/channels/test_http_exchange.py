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
from tocsin.channels.http import BODY_READ_LIMIT, build_http_client, checked_url


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


async def test_a_long_answer_is_read_only_to_the_limit_and_the_next_post_still_goes(
    receiver: HttpReceiver,
) -> None:
    receiver.respond("/long", 500, body=b"x" * (BODY_READ_LIMIT * 4))
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        reply, body = await client.exchange(
            receiver.url("/long"), content=b"{}", headers={}, allowed=LOOPBACK_ONLY
        )
        assert (reply.status_code, len(body)) == (500, BODY_READ_LIMIT)
        reply, body = await client.exchange(
            receiver.url("/after"), content=b"{}", headers={}, allowed=LOOPBACK_ONLY
        )
    assert (reply.status_code, body) == (200, b"ok")
    assert len(receiver.requests_to("/after")) == 1


async def test_only_the_callers_content_type_is_sent_and_one_user_agent(
    receiver: HttpReceiver,
) -> None:
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        await client.exchange(
            receiver.url("/plain"), content=b"x", headers={}, allowed=LOOPBACK_ONLY
        )
        await client.exchange(
            receiver.url("/agent"),
            content=b"x",
            headers={"user-agent": "custom/1"},
            allowed=LOOPBACK_ONLY,
        )
    (plain,) = receiver.requests_to("/plain")
    assert "content-type" not in plain.headers  # aiohttp's application/octet-stream is not added
    (agent,) = receiver.requests_to("/agent")
    assert [v for k, v in agent.raw_headers if k.lower() == "user-agent"] == ["custom/1"]


async def test_credentials_in_the_url_travel_as_basic_authorization(
    receiver: HttpReceiver,
) -> None:
    url = receiver.url("/basic").replace("http://", "http://hook:s3cret@")
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        reply, _ = await client.exchange(url, content=b"{}", headers={}, allowed=LOOPBACK_ONLY)
    assert reply.status_code == 200
    (request,) = receiver.requests_to("/basic")
    assert request.headers["authorization"] == "Basic aG9vazpzM2NyZXQ="


async def test_an_answer_shows_its_headers_case_insensitively_but_not_in_its_repr(
    receiver: HttpReceiver,
) -> None:
    receiver.respond("/limited", 429, headers={"Retry-After": "7", "Set-Cookie": "s=canary"})
    async with build_http_client(timeout=2, allowed_networks=LOOPBACK_ONLY) as client:
        reply, _ = await client.exchange(
            receiver.url("/limited"), content=b"{}", headers={}, allowed=LOOPBACK_ONLY
        )
    assert (reply.status_code, reply.headers.get("retry-after")) == (429, "7")
    assert "canary" not in repr(reply)
