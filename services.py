"""Start-up and shut-down of what a process shares: database, keys, HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError

from tocsin.channels.base import SendContext
from tocsin.channels.http import build_http_client
from tocsin.resolvers.context import Services
from tocsin.resolvers.tokens import TokenResolver, count_tokens, create_token
from tocsin.settings import ConfigurationError, Settings
from tocsin.storage.database import Database
from tocsin.storage.enums import Role
from tocsin.storage.migrate import startup_lock, upgrade_to_head
from tocsin.storage.redaction import log_redaction
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import MetaRow

KEY_CHECK = "key_check"
FIRST_ADMIN_LOCK = "tocsin.first-admin"


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
        services.extras["tokens"] = TokenResolver(services)
        if http:
            client = build_http_client(
                timeout=settings.delivery_timeout,
                allowed_networks=settings.allowed_private_networks,
            )
            services.extras["http"] = client
            services.extras["send_context"] = SendContext(
                http=client,
                timeout=settings.delivery_timeout,
                message_prefix=settings.message_prefix,
                telegram_api_base=settings.telegram_api_base,
                allowed_networks=settings.allowed_private_networks,
            )
        try:
            yield services
        finally:
            if http:
                await services.extras["http"].aclose()
    finally:
        await db.dispose()
