"""What a process shares, typed: database, keys, HTTP client, the emit path's committer,
catalog and rate limiter, and the worker; with their start-up and shut-down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from tocsin.channels.base import SendContext
from tocsin.channels.http import build_http_client
from tocsin.resolvers.events import EventTypeCatalog, GroupCommitter
from tocsin.resolvers.live import EventFeed
from tocsin.resolvers.rate_limit import EmitRateLimiter
from tocsin.resolvers.tokens import TokenResolver, count_tokens, create_token
from tocsin.settings import ConfigurationError, Settings
from tocsin.storage.database import Database
from tocsin.storage.enums import Role
from tocsin.storage.migrate import startup_lock, upgrade_to_head
from tocsin.storage.redaction import log_redaction
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import MetaRow

if TYPE_CHECKING:
    from tocsin.worker import Worker

KEY_CHECK = "key_check"
FIRST_ADMIN_LOCK = "tocsin.first-admin"


@dataclass(slots=True)
class Services:
    """Long-lived things one process owns, built once when it starts (``open_services``)."""

    settings: Settings
    db: Database
    box: SecretBox
    send_context: SendContext | None = None
    "What senders share (the guarded HTTP client, timeouts); None without HTTP (CLI commands)."
    worker: Worker | None = None
    "The in-process delivery worker, when this process runs one."
    tokens: TokenResolver = field(init=False)
    catalog: EventTypeCatalog = field(init=False)
    committer: GroupCommitter = field(init=False)
    rate_limiter: EmitRateLimiter | None = field(init=False)
    "Per-token emit buckets; None when TOCSIN_EMIT_RATE_LIMIT is 0 (unlimited)."
    feed: EventFeed = field(init=False)
    "The live events of Subscription.events (polls only while someone subscribes)."

    def __post_init__(self) -> None:
        settings = self.settings
        self.tokens = TokenResolver(self.db, settings.bootstrap_token)
        self.catalog = EventTypeCatalog(self.db)
        self.feed = EventFeed(self.db)
        self.committer = GroupCommitter(self.db, self.wake_worker, limit=settings.emit_queue_limit)
        rate = settings.emit_rate_limit
        self.rate_limiter = EmitRateLimiter(rate) if rate else None

    def wake_worker(self) -> None:
        """New deliveries were committed: the in-process worker looks at once (others poll,
        or hear NOTIFY on PostgreSQL)."""
        if self.worker is not None:
            self.worker.wake()
        self.feed.wake()  # a flag for the live feed's poller, when one runs


async def check_keys(db: Database, box: SecretBox) -> None:
    """Refuse to run with keys that cannot open what is stored (rather than serve garbage)."""
    async with db.read() as session:
        row = await session.get(MetaRow, KEY_CHECK)
    if row is None:
        try:
            async with db.write() as session:
                session.add(MetaRow(key=KEY_CHECK, value=box.key_check_token()))
        except IntegrityError:
            async with db.read() as session:
                row = await session.get(MetaRow, KEY_CHECK)
    if row is not None and not box.opens(row.value):
        raise ConfigurationError(
            "TOCSIN_SECRET_KEYS cannot decrypt this database's secrets: it was encrypted with "
            "a key that is not among the configured keys (is the key file or variable right?)"
        )


async def ensure_first_admin_token(services: Services) -> str | None:
    """On an empty database without TOCSIN_BOOTSTRAP_TOKEN: one ADMIN token, returned once."""
    if services.settings.bootstrap_token is not None:
        return None
    # Two `tocsin serve` starting together would each find no token and each print one.
    async with startup_lock(services.db.engine, FIRST_ADMIN_LOCK):
        if await count_tokens(services.db) > 0:
            return None
        token, _, _ = await create_token(
            db=services.db, actor="tocsin serve", name="admin", role=Role.ADMIN
        )
    return token


@asynccontextmanager
async def open_services(settings: Settings, *, http: bool = True) -> AsyncIterator[Services]:
    with log_redaction():
        async with _open_services(settings, http=http) as services:
            yield services


@asynccontextmanager
async def _open_services(settings: Settings, *, http: bool) -> AsyncIterator[Services]:
    box = SecretBox.from_settings(settings)
    db = Database.from_settings(settings)
    try:
        await upgrade_to_head(db.engine)
        await check_keys(db, box)
        services = Services(settings=settings, db=db, box=box)
        client = None
        if http:
            client = build_http_client(
                timeout=settings.delivery_timeout,
                allowed_networks=settings.allowed_private_networks,
            )
            services.send_context = SendContext(
                http=client,
                timeout=settings.delivery_timeout,
                message_prefix=settings.message_prefix,
                slack_api_base=settings.slack_api_base,
                telegram_api_base=settings.telegram_api_base,
                sendgrid_api_base=settings.sendgrid_api_base,
                allowed_networks=settings.allowed_private_networks,
            )
        try:
            yield services
        finally:
            if client is not None:
                await client.aclose()
    finally:
        await db.dispose()
