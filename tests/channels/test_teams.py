"""Microsoft Teams: an Adaptive Card through a Workflows webhook URL, against a real receiver
that answers as Workflows does (202 Accepted, sometimes 200; 429 with Retry-After)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.channels import CANARY, MakeDestination, MakeMessage
from tests.delivery.test_delivery import deliveries, emit, save, settled
from tests.delivery.test_send_test import SEND_TEST
from tests.peers import HttpReceiver
from tests.support import Api
from tocsin.channels.base import Destination, SendContext
from tocsin.channels.teams import CARD_TYPE, MAX_FACTS, TeamsSender

HOOK = f"/workflows/6f1c/triggers/manual/paths/invoke/{CANARY}"


def teams_destination(make_destination: MakeDestination, url: str) -> Destination:
    return make_destination("TEAMS", secrets={"webhook_url": url})


def card_of(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == CARD_TYPE
    card: dict[str, Any] = attachment["content"]
    return card


def facts_of(card: dict[str, Any]) -> list[tuple[str, str]]:
    [fact_set] = [block for block in card["body"] if block["type"] == "FactSet"]
    return [(fact["title"], fact["value"]) for fact in fact_set["facts"]]


async def test_receiver_gets_an_adaptive_card_with_title_detail_and_metadata(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    # given a Workflows URL that accepts the message as Teams does, with 202
    receiver.respond(HOOK, 202, body=b"")
    destination = teams_destination(make_destination, receiver.url(HOOK))

    # when a message is sent
    result = await TeamsSender().send(destination, make_message(), context)

    # then it is delivered, as one Adaptive Card 1.4
    assert result.ok, result.error
    assert result.status_code == 202
    [request] = receiver.requests_to(HOOK)
    assert request.headers["content-type"] == "application/json"
    card = card_of(request.json())
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    texts = [block["text"] for block in card["body"] if block["type"] == "TextBlock"]
    assert texts[0] == "[Tocsin] dbt build failed in staging"
    assert "1 of 24 models failed: stg_orders" in texts
    assert facts_of(card) == [("environment", "staging"), ("command", "build")]
    assert "HIGH" in texts[-1] and "refresh_failed" in texts[-1]


async def test_200_is_delivered_too(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 200, body=b"1")
    destination = teams_destination(make_destination, receiver.url(HOOK))

    result = await TeamsSender().send(destination, make_message(detail=None, metadata={}), context)

    assert result.ok and result.status_code == 200
    card = card_of(receiver.requests_to(HOOK)[0].json())
    assert [block["type"] for block in card["body"]] == ["TextBlock", "TextBlock"]


async def test_many_metadata_keys_are_counted_not_all_shown(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    destination = teams_destination(make_destination, receiver.url(HOOK))
    message = make_message(metadata={f"key{i}": i for i in range(MAX_FACTS + 5)})

    await TeamsSender().send(destination, message, context)

    facts = facts_of(card_of(receiver.requests_to(HOOK)[0].json()))
    assert len(facts) == MAX_FACTS + 1
    assert facts[0] == ("key0", "0")
    assert facts[-1] == ("…", "5 more not shown")


async def test_throttled_is_retried_after_retry_after(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    receiver.respond(HOOK, 429, body="Rate limit is exceeded.", retry_after="7")
    destination = teams_destination(make_destination, receiver.url(HOOK))

    result = await TeamsSender().send(destination, make_message(), context)

    assert not result.ok
    assert (result.status_code, result.retryable, result.retry_after) == (429, True, 7.0)


@pytest.mark.parametrize("status", [400, 404])
async def test_a_refused_message_is_final_and_keeps_the_url_secret(
    status: int,
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    body = f'{{"error": {{"code": "TriggerNotFound", "message": "no flow at {HOOK}"}}}}'
    receiver.respond(HOOK, status, body=body)
    destination = teams_destination(make_destination, receiver.url(HOOK))

    result = await TeamsSender().send(destination, make_message(), context)

    assert not result.ok and not result.retryable
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert CANARY not in result.error


async def test_a_channel_without_a_url_sends_nothing(
    receiver: HttpReceiver,
    context: SendContext,
    make_message: MakeMessage,
    make_destination: MakeDestination,
) -> None:
    result = await TeamsSender().send(make_destination("TEAMS"), make_message(), context)

    assert (result.ok, result.error) == (False, "Teams webhook URL is not set")
    assert receiver.requests == []


# -- through the API and the worker ----------------------------------------------------

TEAMS_FIELDS = "... on TeamsChannel { webhookUrlSet webhookUrlHint }"


async def test_save_read_deliver_and_test_a_teams_channel(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a Teams channel saved through saveTeamsChannel
    receiver.respond(HOOK, 202, body=b"")
    channel_id = await save(live, "Teams", {"name": "ops", "webhookUrl": receiver.url(HOOK)})
    [channel] = (await live.ok(f"{{ channels {{ id kind configured {TEAMS_FIELDS} }} }}"))[
        "channels"
    ]
    assert channel["kind"] == "TEAMS" and channel["webhookUrlSet"] is True
    assert channel["webhookUrlHint"] == f"http://127.0.0.1/…/{CANARY[-4:]}"

    # when an event is emitted, then it is delivered on 202 and in the delivery log
    await emit(live, detail="1 of 24 models failed", metadata={"environment": "staging"})
    [delivery] = await settled(live, 1)
    assert (delivery["status"], delivery["channelKind"]) == ("DELIVERED", "TEAMS")
    assert delivery["lastStatusCode"] == 202
    card = card_of(receiver.requests_to(HOOK)[0].json())
    assert facts_of(card) == [("environment", "staging")]
    assert await deliveries(live, kind="TEAMS") == [delivery]

    # and sendTest and the REST test endpoint reach it by kind
    tested = (await live.ok(SEND_TEST, {"kind": "TEAMS"}))["sendTest"]
    assert [(r["channel"]["id"], r["ok"]) for r in tested["results"]] == [(channel_id, True)]
    rest = await live.client.post(
        "/api/notifications/test",
        json={"kind": "teams"},
        headers={"Authorization": f"Bearer {live.admin_token}"},
    )
    assert rest.status_code == 200
    [result] = rest.json()["results"]
    assert (result["kind"], result["ok"], result["status_code"]) == ("teams", True, 202)
    assert len(receiver.requests_to(HOOK)) == 3
    assert CANARY not in str(tested) + rest.text


async def test_metrics_count_teams_deliveries(live: Api, receiver: HttpReceiver) -> None:
    receiver.respond(HOOK, 202, body=b"")
    await save(live, "Teams", {"webhookUrl": receiver.url(HOOK)})

    await emit(live)
    await settled(live, 1)

    metrics = (await live.client.get("/metrics")).text
    assert 'tocsin_deliveries_total{kind="TEAMS",outcome="delivered"}' in metrics
    assert 'tocsin_delivery_attempt_duration_seconds_count{kind="TEAMS"}' in metrics


async def test_bad_urls_are_refused_at_save(api: Api) -> None:
    query = (
        "mutation($i: TeamsChannelInput!) { saveTeamsChannel(input: $i) "
        "{ channel { id } errors { field code } } }"
    )
    for url, code in [
        ("ftp://example.com/x", "URL_SCHEME_NOT_ALLOWED"),
        ("https://10.0.0.1/workflows/x", "DESTINATION_NOT_ALLOWED"),
        ("", "REQUIRED"),
    ]:
        answer = (await api.ok(query, {"i": {"webhookUrl": url}}))["saveTeamsChannel"]
        assert answer == {"channel": None, "errors": [{"field": ["webhookUrl"], "code": code}]}
