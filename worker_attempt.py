"""One attempt at a claimed delivery: the message built from its rows, its channel's
secrets opened, and the kind's ``send`` called under the delivery timeout.

An attempt never raises: a remote failure is the sender's SendResult, a timeout or a
failure inside Tocsin (a bug, secrets that cannot be opened) becomes a retryable one,
logged with where it happened but not with what the message said.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Protocol

from tocsin.channels.base import Destination, Message, SendContext, SendResult
from tocsin.channels.registry import sender_for
from tocsin.settings import Settings
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.claims import ClaimedDelivery
from tocsin.storage.database import Database
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow
from tocsin.worker_digest import attempt_digest

__all__ = ["WorkerServices", "attempt", "frames"]

log = logging.getLogger("tocsin.worker")

TIMEOUT_GRACE = 5.0
"Seconds past the delivery timeout before a send that ignores it is cut off."


class WorkerServices(Protocol):
    """What the delivery core uses of its process's services (``tocsin.services.Services``)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def box(self) -> SecretBox: ...
    @property
    def send_context(self) -> SendContext | None: ...


async def attempt(
    claimed: ClaimedDelivery, channel: ChannelRow, services: WorkerServices
) -> SendResult:
    """Send ``claimed`` to ``channel`` (its channel, found sendable) once."""
    delivery, event = claimed.delivery, claimed.event
    started = time.perf_counter()
    try:
        context = services.send_context
        if context is None:
            raise RuntimeError("the worker needs services opened with HTTP")
        message = Message(
            delivery_id=delivery.id,
            event_id=event.id,
            event_type=event.type,
            priority=event.priority,
            title=event.title,
            detail=event.detail,
            metadata=event.metadata_,
            occurred_at=event.occurred_at,
        )
        destination = Destination(
            channel_id=channel.id,
            kind=channel.kind,
            name=channel.name,
            config=channel.config,
            secrets=decrypt_secrets(services.box, channel),
        )
        if delivery.digest_id is not None:
            return await attempt_digest(claimed, destination, context, services.db)
        return await _send_in_time(destination, message, context, started)
    except Exception as exc:
        log.error(
            "delivery %s: sending to %s failed inside Tocsin (%s)\n%s",
            delivery.id,
            channel.kind,
            type(exc).__name__,
            frames(exc),
        )
        return _failed(started, f"internal error ({type(exc).__name__})")


async def _send_in_time(
    destination: Destination, message: Message, context: SendContext, started: float
) -> SendResult:
    """The kind's ``send``, cut off a little after the delivery timeout it was given."""
    try:
        async with asyncio.timeout(context.timeout + TIMEOUT_GRACE):
            return await sender_for(destination.kind).send(destination, message, context)
    except TimeoutError:
        return _failed(started, f"timed out after {context.timeout:g}s")


def _failed(started: float, error: str) -> SendResult:
    """A retryable failure of an attempt begun at ``started`` (``time.perf_counter``)."""
    latency_ms = (time.perf_counter() - started) * 1000
    return SendResult(ok=False, latency_ms=latency_ms, error=error, retryable=True)


def frames(exc: BaseException) -> str:
    """Where ``exc`` was raised, without its message or its causes' (they may carry data)."""
    return "".join(traceback.format_tb(exc.__traceback__)).rstrip()
