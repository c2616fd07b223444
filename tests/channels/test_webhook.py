"""Generic webhooks: the contract's body, Standard Webhooks signatures, custom headers."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import tocsin
from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.peers import HttpReceiver, Reply
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.webhook import WebhookSender

SIGNING_SECRET = "whsec_" + base64.b64encode(f"{CANARY}-signing-key-32bytes!".encode()).decode()
PATH = f"/hooks/{CANARY}"


def webhook_destination(
    make_destination: MakeDestination,
    url: str,
    *,
    signing_secret: str | None = None,
    headers: dict[str, str] | None = None,
) -> Destination:
    secrets: dict[str, object] = {"url": url}
    if signing_secret is not None:
        secrets["signing_secret"] = signing_secret
    if headers is not None:
        secrets["headers"] = headers
    return make_destination(
        "WEBHOOK", secrets=secrets, config={"header_names": list(headers or {})}
    )


async def test_body_is_the_contract_json(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = webhook_destination(make_destination, receiver.url(PATH))

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [request] = receiver.requests_to(PATH)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    sent_at = body.pop("sent_at")
    assert body == {
        "id": "dlv_01HZX3",
        "event_id": "evt_01HZX2",
        "event_type": "refresh_failed",
        "priority": "HIGH",
        "title": "dbt build failed in staging",
        "detail": "1 of 24 models failed: stg_orders",
        "metadata": {"environment": "staging", "command": "build"},
        "occurred_at": "2026-06-12T09:15:00+00:00",
        "tocsin_version": tocsin.__version__,
    }
    assert sent_at.endswith("+00:00")
    assert datetime.fromisoformat(sent_at) <= request.received_at
    assert "webhook-signature" not in request.headers
    # unsigned, the delivery id still travels, so the receiver can drop repeats
    assert request.headers["webhook-id"] == "dlv_01HZX3"


async def test_signed_request_verifies_as_a_standard_webhooks_receiver_would(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = webhook_destination(
        make_destination, receiver.url(PATH), signing_secret=SIGNING_SECRET
    )

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [request] = receiver.requests_to(PATH)
    payload = Webhook(SIGNING_SECRET).verify(request.body, request.headers)
    assert payload["id"] == request.headers["webhook-id"] == "dlv_01HZX3"
    assert request.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(SIGNING_SECRET).verify(request.body.replace(b"HIGH", b"LOW!"), request.headers)


async def test_webhook_id_is_the_same_when_a_delivery_is_sent_again(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = webhook_destination(
        make_destination, receiver.url(PATH), signing_secret=SIGNING_SECRET
    )
    receiver.respond_in_turn(PATH, Reply(status=503), Reply(status=200))

    first = await WebhookSender().send(destination, make_message(), context)
    second = await WebhookSender().send(destination, make_message(), context)

    assert (first.ok, first.retryable, second.ok) == (False, True, True)
    ids = [request.headers["webhook-id"] for request in receiver.requests_to(PATH)]
    assert ids == ["dlv_01HZX3", "dlv_01HZX3"]
    for request in receiver.requests_to(PATH):
        Webhook(SIGNING_SECRET).verify(request.body, request.headers)


async def test_custom_headers_are_sent_as_given_but_cannot_forge_signatures(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    headers = {
        "Authorization": f"Bearer {CANARY}",
        "X-Team": "data-platform",
        "webhook-signature": "v1,forged",
    }
    destination = webhook_destination(
        make_destination, receiver.url(PATH), signing_secret=SIGNING_SECRET, headers=headers
    )

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [request] = receiver.requests_to(PATH)
    assert request.headers["authorization"] == f"Bearer {CANARY}"
    assert request.headers["x-team"] == "data-platform"
    Webhook(SIGNING_SECRET).verify(request.body, request.headers)


async def test_a_header_value_that_could_split_the_request_is_refused(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    headers = {"X-Token": f"{CANARY}\r\nX-Injected: yes"}
    destination = webhook_destination(make_destination, receiver.url(PATH), headers=headers)

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.error == "custom header X-Token has a value that can't be sent"
    assert receiver.requests == []


async def test_a_malformed_signing_secret_fails_without_sending(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = webhook_destination(
        make_destination, receiver.url(PATH), signing_secret=f"whsec_{CANARY}!!"
    )

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.error == "signing secret is not a valid whsec_ secret"
    assert not result.retryable
    assert receiver.requests == []


async def test_errors_never_echo_the_url_or_header_values(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    url = receiver.url(f"{PATH}?token={CANARY}-query")
    receiver.respond(
        PATH,
        502,
        body=f'{{"error": "upstream rejected {url} with Authorization: Bearer {CANARY}-header"}}',
    )
    destination = webhook_destination(
        make_destination,
        url,
        signing_secret=SIGNING_SECRET,
        headers={"Authorization": f"Bearer {CANARY}-header"},
    )

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.retryable
    assert result.error is not None
    assert result.error.startswith("HTTP 502: upstream rejected")
    assert CANARY not in result.error
    assert "token=" not in result.error


async def test_service_unavailable_passes_on_retry_after(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(PATH, 503, body="maintenance", retry_after="86400")
    destination = webhook_destination(make_destination, receiver.url(PATH))

    result = await WebhookSender().send(destination, make_message(), context)

    assert (result.retryable, result.retry_after) == (True, 3600.0)


async def test_credentials_in_the_url_become_basic_auth(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    url = f"http://hook:{CANARY}@127.0.0.1:{receiver.port}{PATH}"
    destination = webhook_destination(make_destination, url)

    result = await WebhookSender().send(destination, make_message(), context)

    assert result.ok, result.error
    [request] = receiver.requests_to(PATH)
    expected = base64.b64encode(f"hook:{CANARY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
