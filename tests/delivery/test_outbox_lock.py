"""On SQLite one worker owns the outbox: a second one on the same file refuses to start,
naming the first, and leaves the deliveries the first is sending alone."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from tests.delivery.test_delivery import emit, save
from tests.peers import HttpReceiver
from tests.support import PG_URL, Api
from tocsin.storage.claims import release_orphaned_sends
from tocsin.storage.outbox_lock import OutboxLock, OutboxOwnedElsewhere
from tocsin.storage.tables import DeliveryRow
from tocsin.storage.types import utcnow
from tocsin.worker import Worker

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="the ownership lock is SQLite's")


async def statuses(api: Api) -> list[str]:
    async with api.services.db.read() as session:
        return list((await session.scalars(select(DeliveryRow.status))).all())


async def test_a_second_worker_refuses_and_leaves_the_sends_of_the_first_alone(
    live: Api, receiver: HttpReceiver
) -> None:
    # given a worker sending to a slow receiver
    receiver.respond("/slow", hang=2.0)
    await save(live, "Webhook", {"url": receiver.url("/slow")})
    for n in range(3):
        await emit(live, title=f"in flight {n}")
    await receiver.wait_for_requests(3, path="/slow")
    assert await statuses(live) == ["SENDING"] * 3
    # when a second worker on the same database starts
    second = Worker(live.services)
    with pytest.raises(OutboxOwnedElsewhere, match=f"pid {os.getpid()}"):
        await second.start()
    # then it does not run, and what the first sends is still the first's
    assert not second.running
    assert await statuses(live) == ["SENDING"] * 3
    requests = await receiver.wait_for_requests(3, path="/slow")
    assert len(requests) == 3


async def test_only_the_owner_may_release_orphaned_sends(live: Api) -> None:
    lock = OutboxLock.acquire(live.services.settings.data_dir / "elsewhere.db")
    lock.release()
    async with live.services.db.write() as session:
        with pytest.raises(RuntimeError, match="only the owner"):
            await release_orphaned_sends(session, now=utcnow(), owner=lock)
