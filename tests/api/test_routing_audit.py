"""Issue 9: muteChannel and every change to what a channel receives are audited with the
value before and after."""

from __future__ import annotations

from typing import Any

from tests.api.routing_support import mute, save_webhook
from tests.support import Api

AUDIT = """query($action: String) { auditLog(first: 50, action: $action) {
  nodes { actor action target details } } }"""


async def entries(api: Api, action: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await api.ok(AUDIT, {"action": action}))["auditLog"]["nodes"]
    return nodes


async def test_each_routing_change_is_audited_before_and_after(api: Api) -> None:
    # given a channel that takes refresh_failed only
    channel_id = await save_webhook(api, "hook", eventTypes=["refresh_failed"])
    [created] = await entries(api, "channel.create")
    assert created["details"]["changes"]["event_types"] == {
        "before": None,
        "after": ["refresh_failed"],
    }
    # when every routing field is changed
    await save_webhook(
        api,
        "hook",
        id=channel_id,
        eventTypes=None,
        eventCategories=["assistant"],
        minPriority="HIGH",
        metadataMatch={"environment": "production"},
        mode="DIGEST",
        enabled=False,
    )
    # then the update says what each was and is
    [updated] = await entries(api, "channel.update")
    assert updated["target"] == channel_id
    changes = updated["details"]["changes"]
    assert {key: changes[key] for key in changes if key not in ("name", "url")} == {
        "event_types": {"before": ["refresh_failed"], "after": None},
        "event_categories": {"before": None, "after": ["assistant"]},
        "min_priority": {"before": "INFO", "after": "HIGH"},
        "metadata_match": {"before": None, "after": {"environment": ["production"]}},
        "mode": {"before": "REALTIME", "after": "DIGEST"},
        "enabled": {"before": True, "after": False},
    }


async def test_mute_and_unmute_are_audited_before_and_after(api: Api) -> None:
    channel_id = await save_webhook(api, "hook")
    await mute(api, channel_id, "2036-12-04T09:00:00Z")
    await mute(api, channel_id, "2036-12-05T09:00:00Z")
    await mute(api, channel_id, None)
    muted = await entries(api, "channel.mute")
    [unmuted] = await entries(api, "channel.unmute")
    # (the log lists the newest first)
    changes = [e["details"]["changes"]["muted_until"] for e in [*reversed(muted), unmuted]]
    assert changes == [
        {"before": None, "after": "2036-12-04T09:00:00+00:00"},
        {"before": "2036-12-04T09:00:00+00:00", "after": "2036-12-05T09:00:00+00:00"},
        {"before": "2036-12-05T09:00:00+00:00", "after": None},
    ]
    assert {e["actor"] for e in [*muted, unmuted]} == {"admin"}
    assert {e["target"] for e in [*muted, unmuted]} == {channel_id}
