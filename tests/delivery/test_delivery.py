"""Issue 4: an event reaches every kind; retries, Retry-After, FAILED and retryDelivery;
a hanging destination delays no one; idempotency and dedup; 1000 events in one call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.peers import HttpReceiver, Reply, SmtpServer
from tests.support import Api, eventually

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
EMIT = """mutation($input: EmitEventInput!) { emitEvent(input: $input) {
  event { id type priority source } deduplicated errors { field code message } } }"""
DELIVERIES = """query($first: Int, $filter: DeliveryFilter) {
  deliveries(first: $first, filter: $filter) {
  totalCount nodes { id status attemptCount lastStatusCode lastError channelKind
  attempts { number ok statusCode error durationMs } event { id title } } } }"""


async def save(api: Api, kind: str, data: dict[str, Any]) -> str:
    result = await api.ok(
        f"mutation($i: {kind}ChannelInput!) {{ s: save{kind}Channel(input: $i) "
        "{ channel { id configured } errors { field code message } } }",
        {"i": data},
    )
    assert result["s"]["errors"] == [], result
    assert result["s"]["channel"]["configured"] is True
    channel_id: str = result["s"]["channel"]["id"]
    return channel_id


async def emit(api: Api, **fields: Any) -> dict[str, Any]:
    data = {"type": "refresh_failed", "title": "dbt build failed in staging", **fields}
    result: dict[str, Any] = (await api.ok(EMIT, {"input": data}))["emitEvent"]
    return result


async def deliveries(api: Api, **filter: Any) -> list[dict[str, Any]]:
    data = await api.ok(DELIVERIES, {"first": 200, "filter": filter or None})
    nodes: list[dict[str, Any]] = data["deliveries"]["nodes"]
    return nodes


async def settled(api: Api, count: int, **filter: Any) -> list[dict[str, Any]]:
    """Deliveries once ``count`` of them are DELIVERED or FAILED."""

    async def check() -> list[dict[str, Any]] | None:
        nodes = await deliveries(api, **filter)
        done = [n for n in nodes if n["status"] in {"DELIVERED", "FAILED"}]
        return nodes if len(done) >= count else None

    result: list[dict[str, Any]] = await eventually(check, timeout=20)
    return result


async def test_one_event_reaches_all_five_kinds(
    live: Api, receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    # given one channel of each kind, against real peers
    await save(live, "Slack", {"webhookUrl": receiver.url("/slack")})
    await save(live, "Discord", {"webhookUrl": receiver.url("/discord")})
    await save(
        live,
        "Webhook",
        {
            "url": receiver.url("/hook"),
            "signingSecret": SIGNING,
            "headers": {"X-Team": "data"},
        },
    )
    await save(live, "Telegram", {"botToken": BOT, "chatId": "-1001234567890"})
    await save(
        live,
        "Email",
        {
            "to": ["ops@example.com"],
            "smtpHost": "localhost",
            "smtpPort": smtp_server.port,
            "security": "STARTTLS",
            "username": smtp_server.username,
            "password": smtp_server.password,
            "fromAddress": "tocsin@example.com",
        },
    )

    # when a service emits one event
    started = time.perf_counter()
    result = await emit(
        live,
        detail="1 of 24 models failed: stg_orders",
        metadata={"environment": "staging", "command": "build"},
    )
    assert result["errors"] == [] and result["deduplicated"] is False
    event_id = result["event"]["id"]
    assert result["event"]["priority"] == "HIGH"  # the type's default

    # then every receiver gets it in its own wire format
    requests = await receiver.wait_for_requests(4, timeout=10)
    by_path = {r.path: r for r in requests}
    slack = by_path["/slack"].json()
    assert (
        slack["text"] == "[Tocsin] dbt build failed in staging: 1 of 24 models failed: stg_orders"
    )
    assert slack["blocks"]
    discord = by_path["/discord"].json()
    assert "dbt build failed in staging" in discord["content"]
    assert len(discord["embeds"]) == 1
    telegram = by_path[f"/bot{BOT}/sendMessage"].json()
    assert telegram["chat_id"] == "-1001234567890"
    assert "dbt build failed in staging" in telegram["text"]

    hook = by_path["/hook"]
    body = hook.json()
    assert body["event_id"] == event_id
    assert body["event_type"] == "refresh_failed"
    assert body["metadata"] == {"environment": "staging", "command": "build"}
    assert hook.headers["x-team"] == "data"
    assert hook.headers["content-type"].startswith("application/json")
    verified = Webhook(SIGNING).verify(hook.body, hook.headers)
    assert verified["id"] == hook.headers["webhook-id"] == body["id"]

    [mail] = await smtp_server.wait_for_messages(1, timeout=10)
    assert mail.over_tls is True
    assert mail.message["Subject"] == "[Tocsin] dbt build failed in staging"
    assert "stg_orders" in mail.text_part and "staging" in mail.text_part
    assert "stg_orders" in mail.html_part

    # and the log shows five deliveries, each DELIVERED after one attempt
    nodes = await settled(live, 5)
    assert sorted(n["channelKind"] for n in nodes) == [
        "DISCORD",
        "EMAIL",
        "SLACK",
        "TELEGRAM",
        "WEBHOOK",
    ]
    assert all(n["status"] == "DELIVERED" and n["attemptCount"] == 1 for n in nodes)
    assert time.perf_counter() - started < 20


async def test_5xx_is_retried_then_delivered(live: Api, receiver: HttpReceiver) -> None:
    receiver.respond_in_turn("/flaky", Reply(status=500), Reply(status=503), Reply(status=200))
    await save(live, "Webhook", {"url": receiver.url("/flaky")})
    await emit(live)
    [delivery] = await settled(live, 1)
    assert delivery["status"] == "DELIVERED"
    assert [(a["number"], a["ok"], a["statusCode"]) for a in delivery["attempts"]] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    # every attempt carried the same delivery id, in the body and as webhook-id
    requests = receiver.requests_to("/flaky")
    assert len({(r.json()["id"], r.headers["webhook-id"]) for r in requests}) == 1


async def test_400_fails_at_once(live: Api, receiver: HttpReceiver) -> None:
    receiver.respond("/bad", 400, body="invalid_payload")
    await save(live, "Webhook", {"url": receiver.url("/bad")})
    await emit(live)
    [delivery] = await settled(live, 1)
    assert delivery["status"] == "FAILED"
    assert delivery["attemptCount"] == 1
    assert delivery["lastStatusCode"] == 400
    assert "400" in delivery["lastError"]


async def test_retry_after_is_honoured(live: Api, receiver: HttpReceiver) -> None:
    receiver.respond_in_turn("/limited", Reply(status=429, retry_after=2), Reply(status=200))
    await save(live, "Webhook", {"url": receiver.url("/limited")})
    await emit(live)
    [delivery] = await settled(live, 1)
    assert delivery["status"] == "DELIVERED"
    first, second = receiver.requests_to("/limited")
    assert second.monotonic - first.monotonic >= 2.0


async def test_retries_run_out_then_retry_delivery_delivers(
    live: Api, receiver: HttpReceiver
) -> None:
    receiver.respond("/down", 502)
    channel_id = await save(live, "Webhook", {"url": receiver.url("/down"), "maxRetries": 2})
    await emit(live)
    [delivery] = await settled(live, 1)
    assert delivery["status"] == "FAILED"
    assert [a["statusCode"] for a in delivery["attempts"]] == [502, 502, 502]  # 1 + 2 retries
    status = await live.ok("{ notificationStatus { failedDeliveries pendingDeliveries } }")
    assert status["notificationStatus"] == {"failedDeliveries": 1, "pendingDeliveries": 0}

    # when the receiver recovers and an operator retries
    receiver.respond("/down", 200)
    retried = await live.ok(
        "mutation($id: ID!) { retryDelivery(id: $id) { id status } }", {"id": delivery["id"]}
    )
    assert retried["retryDelivery"]["status"] == "PENDING"

    async def delivered() -> dict[str, Any] | None:
        [node] = await deliveries(live, channelId=channel_id)
        return node if node["status"] == "DELIVERED" else None

    node = await eventually(delivered)
    assert [a["number"] for a in node["attempts"]] == [1, 2, 3, 4]


async def test_a_hanging_destination_delays_no_one(live: Api, receiver: HttpReceiver) -> None:
    receiver.respond("/hang", hang=30)
    await save(live, "Webhook", {"name": "stuck", "url": receiver.url("/hang")})
    await save(live, "Webhook", {"name": "healthy", "url": receiver.url("/ok")})
    # fill the stuck channel's slots first
    for _ in range(20):
        await emit(live, title="stuck")
    started = time.perf_counter()
    result = await emit(live, title="for the healthy one")
    emit_seconds = time.perf_counter() - started
    assert result["errors"] == []
    requests = await receiver.wait_for_requests(21, path="/ok", timeout=10)
    assert requests[-1].json()["title"] in {"stuck", "for the healthy one"}
    healthy_arrived = max(r.monotonic for r in requests) - started
    assert healthy_arrived < 1.0, f"healthy channel waited {healthy_arrived:.2f}s"
    assert emit_seconds < 1.0, f"emitEvent took {emit_seconds:.2f}s while a destination hangs"


async def test_idempotency_key_returns_the_first_event(live: Api, receiver: HttpReceiver) -> None:
    await save(live, "Webhook", {"url": receiver.url("/hook")})
    first = await emit(live, idempotencyKey="run-42")
    again = await emit(live, idempotencyKey="run-42", title="a different title")
    assert again["event"]["id"] == first["event"]["id"]
    await settled(live, 1)
    await asyncio.sleep(0.3)
    assert len(receiver.requests_to("/hook")) == 1


async def test_dedup_key_records_but_does_not_resend(live: Api, receiver: HttpReceiver) -> None:
    await save(live, "Webhook", {"url": receiver.url("/hook")})
    first = await emit(live, dedupKey="stg_orders")
    second = await emit(live, dedupKey="stg_orders")
    other = await emit(live, dedupKey="stg_customers")
    assert first["deduplicated"] is False
    assert second["deduplicated"] is True
    assert second["event"]["id"] != first["event"]["id"]  # recorded
    assert other["deduplicated"] is False
    await settled(live, 2)
    await asyncio.sleep(0.3)
    assert len(receiver.requests_to("/hook")) == 2
    events = await live.ok("{ events(first: 10) { totalCount } }")
    assert events["events"]["totalCount"] == 3


async def test_schema_drift_dedups_on_a_fingerprint_of_its_metadata(
    live: Api, receiver: HttpReceiver
) -> None:
    await save(live, "Webhook", {"url": receiver.url("/hook")})
    drift = {"source": "orders", "columns": ["id", "total"]}
    first = await emit(live, type="schema_drift", title="drift", metadata=drift)
    repeat = await emit(
        live, type="schema_drift", title="drift", metadata=dict(reversed(drift.items()))
    )
    changed = await emit(live, type="schema_drift", title="drift", metadata={"source": "orders"})
    assert [first["deduplicated"], repeat["deduplicated"], changed["deduplicated"]] == [
        False,
        True,
        False,
    ]


async def test_unknown_and_disabled_types_store_nothing(live: Api) -> None:
    unknown = await emit(live, type="no_such_type")
    assert unknown["event"] is None
    assert unknown["errors"] == [
        {
            "field": ["type"],
            "code": "UNKNOWN_EVENT_TYPE",
            "message": unknown["errors"][0]["message"],
        }
    ]
    await live.ok(
        "mutation { registerEventType(input: "
        '{name: "deploy_succeeded", enabled: false}) { enabled } }'
    )
    disabled = await emit(live, type="deploy_succeeded")
    assert disabled["errors"][0]["code"] == "EVENT_TYPE_DISABLED"
    events = await live.ok("{ events { totalCount } }")
    assert events["events"]["totalCount"] == 0


async def test_thousand_events_in_one_call_are_all_delivered(
    live: Api, receiver: HttpReceiver
) -> None:
    await save(live, "Webhook", {"url": receiver.url("/bulk")})
    inputs = [{"type": "deploy_succeeded", "title": f"deploy {i}"} for i in range(1000)]
    result = await live.ok(
        "mutation($inputs: [EmitEventInput!]!) { emitEvents(inputs: $inputs) "
        "{ events { id } errors { field code } } }",
        {"inputs": inputs},
    )
    assert result["emitEvents"]["errors"] == []
    ids = {e["id"] for e in result["emitEvents"]["events"]}
    assert len(ids) == 1000
    requests = await receiver.wait_for_requests(1000, path="/bulk", timeout=30)
    assert {r.json()["event_id"] for r in requests} == ids


async def test_emit_events_reports_bad_items_by_index(live: Api) -> None:
    result = await live.ok(
        "mutation($inputs: [EmitEventInput!]!) { emitEvents(inputs: $inputs) "
        "{ events { id } errors { field code } } }",
        {"inputs": [{"type": "test", "title": "ok"}, {"type": "test", "title": ""}]},
    )
    events = result["emitEvents"]["events"]
    assert events[0] is not None and events[1] is None
    assert result["emitEvents"]["errors"] == [
        {"field": ["inputs", "1", "title"], "code": "REQUIRED"}
    ]


async def test_metrics_count_deliveries_by_kind_and_outcome(
    live: Api, receiver: HttpReceiver
) -> None:
    def sample(text: str, name: str, **labels: str) -> float:
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} ") or line.startswith(f"{name}{{{wanted},"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = (await live.client.get("/metrics")).text
    receiver.respond("/refused", 400)
    await save(live, "Webhook", {"name": "ok", "url": receiver.url("/fine")})
    await save(live, "Webhook", {"name": "refused", "url": receiver.url("/refused")})
    await emit(live)
    await settled(live, 2)
    after = (await live.client.get("/metrics")).text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("tocsin_deliveries_total", kind="WEBHOOK", outcome="delivered") == 1
    assert grew("tocsin_deliveries_total", kind="WEBHOOK", outcome="failed") == 1
    assert grew("tocsin_delivery_attempt_duration_seconds_count", kind="WEBHOOK") == 2
    assert "tocsin_delivery_queue_depth" in after
