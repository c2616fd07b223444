"""Retention (issue 12, acceptance 5): finished events past TOCSIN_RETENTION_DAYS go with
their deliveries and attempts; pending ones, recent ones and the audit log stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from tests.delivery.test_delivery import save
from tests.support import Api
from tocsin import metrics
from tocsin.errors import ConfigurationError
from tocsin.periodic import PeriodicRunner, cluster_jobs, retention
from tocsin.settings import load_settings
from tocsin.storage.enums import DeliveryStatus
from tocsin.storage.retention import prune_finished
from tocsin.storage.tables import DeliveryAttemptRow, DeliveryRow, EventRow
from tocsin.storage.types import new_id, utcnow

EMIT = """mutation($i: [EmitEventInput!]!) { emitEvents(inputs: $i) {
  events { id } errors { code } } }"""
EVENT = "query($id: ID!) { event(id: $id) { id deliveries { status } } }"
AUDIT = "{ auditLog(first: 200) { totalCount nodes { id action } } }"
EVENTS = "{ events(first: 200) { totalCount } }"


async def emit(api: Api, count: int, title: str) -> list[str]:
    inputs = [{"type": "test", "title": f"{title} {i}"} for i in range(count)]
    payload = (await api.ok(EMIT, {"i": inputs}))["emitEvents"]
    assert payload["errors"] == []
    return [event["id"] for event in payload["events"]]


async def age(api: Api, event_ids: list[str], *, days: float, status: str) -> None:
    """Backdate events (and set their deliveries' status), with one attempt each."""
    then = utcnow() - timedelta(days=days)
    async with api.services.db.write() as session:
        await session.execute(
            update(EventRow).where(col(EventRow.id).in_(event_ids)).values(created_at=then)
        )
        await session.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.event_id).in_(event_ids))
            .values(status=status, created_at=then)
        )
        ids = await session.scalars(
            select(col(DeliveryRow.id)).where(col(DeliveryRow.event_id).in_(event_ids))
        )
        for delivery_id in ids.all():
            session.add(
                DeliveryAttemptRow(
                    id=new_id(), delivery_id=delivery_id, number=1, duration_ms=5.0, ok=True
                )
            )


async def event(api: Api, event_id: str) -> Any:
    return (await api.ok(EVENT, {"id": event_id}))["event"]


async def test_finished_rows_past_the_age_go_and_the_rest_stays(api: Api, receiver: Any) -> None:
    # given two channels, so that every event has two deliveries
    await save(api, "Webhook", {"name": "a", "url": receiver.url("/a")})
    await save(api, "Webhook", {"name": "b", "url": receiver.url("/b")})
    old_done = await emit(api, 7, "old and delivered")
    old_failed = await emit(api, 2, "old and failed")
    old_pending = await emit(api, 3, "old and still pending")
    old_retrying = await emit(api, 1, "old and retrying")
    recent_done = await emit(api, 2, "recent and delivered")
    await age(api, old_done, days=40, status=DeliveryStatus.DELIVERED)
    await age(api, old_failed, days=31, status=DeliveryStatus.FAILED)
    await age(api, old_pending, days=40, status=DeliveryStatus.PENDING)
    await age(api, old_retrying, days=40, status=DeliveryStatus.RETRYING)
    await age(api, recent_done, days=29, status=DeliveryStatus.DELIVERED)
    # one old event with one delivery delivered and one still to retry: kept
    async with api.services.db.write() as session:
        first = await session.scalar(
            select(col(DeliveryRow.id)).where(col(DeliveryRow.event_id) == old_done[0]).limit(1)
        )
        await session.execute(
            update(DeliveryRow).where(col(DeliveryRow.id) == first).values(status="RETRYING")
        )
    audit_before = (await api.ok(AUDIT))["auditLog"]
    assert audit_before["totalCount"] >= 2  # the two saves
    pruned_before = metrics.RETENTION_PRUNED.labels("event")._value.get()

    # when retention runs with the default 30 days, in batches of 2
    job = retention(load_settings().retention_days)
    assert load_settings().retention_days == 30
    await job(api.services.db, utcnow())
    # (the batched loop itself, with a batch smaller than what is due)
    assert (await prune_finished(api.services.db, before=utcnow(), batch=2)).events == 2

    # then the finished events past the age are gone, with their deliveries and attempts
    for event_id in old_done[1:] + old_failed:
        assert await event(api, event_id) is None
    # and what is pending, retrying, partly unfinished or recent is still there
    for event_id in old_pending + old_retrying + old_done[:1]:
        kept = await event(api, event_id)
        assert kept is not None and len(kept["deliveries"]) == 2
    assert metrics.RETENTION_PRUNED.labels("event")._value.get() - pruned_before == 8
    async with api.services.db.read() as session:
        orphans = await session.scalar(
            select(func.count())
            .select_from(DeliveryAttemptRow)
            .where(col(DeliveryAttemptRow.delivery_id).not_in(select(col(DeliveryRow.id))))
        )
        assert orphans == 0
    # the two recent ones went in the explicit batched run (its cut-off was now)
    assert (await api.ok(EVENTS))["events"]["totalCount"] == 3 + 1 + 1
    # and the audit log is kept, entry for entry
    assert (await api.ok(AUDIT))["auditLog"] == audit_before


def test_retention_days_zero_keeps_everything_and_negative_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOCSIN_RETENTION_DAYS", "0")
    assert [j.name for j in cluster_jobs(load_settings())] == ["lease-recovery", "mute-expiry"]
    monkeypatch.setenv("TOCSIN_RETENTION_DAYS", "7")
    assert load_settings().retention_days == 7
    assert "retention" in [j.name for j in cluster_jobs(load_settings())]
    monkeypatch.delenv("TOCSIN_RETENTION_DAYS")
    with pytest.raises(ConfigurationError, match="TOCSIN_RETENTION_DAYS"):
        load_settings(retention_days=-1)


async def test_the_runner_runs_retention_once_per_interval(api: Api) -> None:
    # given a runner with the cluster's jobs
    runner = PeriodicRunner(api.services.db, cluster_jobs(load_settings()), tick=0)
    # when it looks twice
    first = await runner.run_due()
    second = await runner.run_due()
    # then it ran retention the first time only (its last run is in the database)
    assert "retention" in first
    assert "retention" not in second
