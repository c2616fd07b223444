"""Issue 9, acceptance 4: explainRouting answers, for every channel, the outcome emitEvent
would give an event and a sentence that says why, and stores and sends nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from tests.api.routing_support import COUNTS, emit, mute, save_webhook
from tests.support import Api
from tocsin.storage.enums import Role
from tocsin.storage.tables import EventRow
from tocsin.storage.types import utcnow

EXPLAIN = """query($input: EmitEventInput!) { explainRouting(input: $input) {
  channel { id name } outcome reason } }"""
EVENT = {
    "type": "proposal_ready",  # category assistant, default priority MEDIUM
    "title": "proposal 7 is ready",
    "metadata": {"environment": "staging"},
}
MUTED_UNTIL = "2036-12-04T09:00:00+00:00"


async def explain(
    api: Api, *, token: str | None = None, **fields: Any
) -> dict[str, tuple[str, str]]:
    """{channel name: (outcome, reason)}, checking there is one decision per channel."""
    data = await api.ok(EXPLAIN, {"input": {**EVENT, **fields}}, token=token)
    decisions = data["explainRouting"]
    names = [d["channel"]["name"] for d in decisions]
    assert len(set(names)) == len(names)
    return {d["channel"]["name"]: (d["outcome"], d["reason"]) for d in decisions}


async def one_channel_per_outcome(api: Api) -> None:
    await save_webhook(api, "send")
    await save_webhook(api, "digest", mode="DIGEST")
    await save_webhook(api, "types", eventTypes=["refresh_failed"])
    await save_webhook(api, "categories", eventCategories=["pipeline"])
    await save_webhook(api, "neither", eventTypes=["refresh_failed"], eventCategories=["pipeline"])
    await save_webhook(
        api, "category listed", eventTypes=["refresh_failed"], eventCategories=["assistant"]
    )
    await save_webhook(api, "floor", minPriority="HIGH")
    await save_webhook(api, "metadata", metadataMatch={"environment": ["production"]})
    await save_webhook(api, "disabled", enabled=False)
    await save_webhook(api, "not configured", url=None)
    await mute(api, await save_webhook(api, "muted"), MUTED_UNTIL)


SKIPPED = {
    "types": ("SKIPPED", "event type proposal_ready is not in eventTypes [refresh_failed]"),
    "categories": (
        "SKIPPED",
        "event type proposal_ready is in category assistant, "
        "which is not in eventCategories [pipeline]",
    ),
    "neither": (
        "SKIPPED",
        "event type proposal_ready is not in eventTypes [refresh_failed] "
        "and its category assistant is not in eventCategories [pipeline]",
    ),
    "floor": ("SKIPPED", "priority MEDIUM is below minPriority HIGH"),
    "metadata": ("SKIPPED", "metadata environment=staging is not in [production]"),
    "disabled": ("SKIPPED", "channel is disabled"),
    "not configured": ("SKIPPED", "channel is not configured"),
    "muted": ("SUPPRESSED", "muted until 2036-12-04T09:00Z"),
}


async def test_every_outcome_and_its_reason_and_nothing_is_stored(api: Api) -> None:
    # given one channel for each thing routing looks at
    await one_channel_per_outcome(api)
    before = await api.ok(COUNTS)

    # when an editor asks what a MEDIUM proposal_ready from staging would do
    decisions = await explain(api, token=await api.token(Role.EDITOR))

    # then each channel has its outcome and the sentence that says why
    digest_outcome, digest_reason = decisions.pop("digest")
    assert digest_outcome == "DIGEST" and "MEDIUM" in digest_reason and "digest" in digest_reason
    assert decisions == {
        "send": ("SEND", "sent at once"),
        "category listed": ("SEND", "sent at once"),
        **SKIPPED,
    }
    # and nothing was stored or sent
    assert await api.ok(COUNTS) == before


async def test_a_twin_within_the_dedup_window_is_suppressed_with_when_it_was_sent(
    api: Api,
) -> None:
    # given a proposal_ready with dedupKey p-7 sent 42 s ago (its type's window is 3600 s)
    await one_channel_per_outcome(api)
    sent = await emit(api, **EVENT, dedupKey="p-7")
    async with api.services.db.write() as session:
        await session.execute(
            update(EventRow)
            .where(col(EventRow.id) == sent["event"]["id"])
            .values(created_at=utcnow() - timedelta(seconds=42))
        )
    before = await api.ok(COUNTS)

    # when a twin is explained
    decisions = await explain(api, dedupKey="p-7")

    # then what routing would send is suppressed by dedup; the rest is as without it
    dedup = ("SUPPRESSED", "dedup: same dedupKey sent 42 s ago (window 3600 s)")
    assert decisions == {"send": dedup, "digest": dedup, "category listed": dedup, **SKIPPED}
    assert await api.ok(COUNTS) == before
    # and another dedupKey is not a twin
    assert (await explain(api, dedupKey="p-8"))["send"] == ("SEND", "sent at once")


async def test_input_emit_event_would_refuse_is_a_coded_error(api: Api) -> None:
    await save_webhook(api, "send")
    before = await api.ok(COUNTS)
    # when the input names no registered type and has a blank title
    body = await api.gql(EXPLAIN, {"input": {"type": "no_such_type", "title": " "}})
    # then the answer is one error coded as emitEvent's first UserError, listing them all
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == ["explainRouting"]
    assert error["extensions"]["code"] == "UNKNOWN_EVENT_TYPE"
    assert error["extensions"]["userErrors"] == [
        {
            "field": ["type"],
            "code": "UNKNOWN_EVENT_TYPE",
            "message": "No event type 'no_such_type' is registered.",
        },
        {"field": ["title"], "code": "REQUIRED", "message": "Give the event a title."},
    ]
    assert await api.ok(COUNTS) == before


async def test_with_no_channel_the_answer_is_empty(api: Api) -> None:
    assert await explain(api) == {}
