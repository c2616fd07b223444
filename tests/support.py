"""Test support: fresh databases (SQLite, or PostgreSQL when TOCSIN_TEST_DATABASE_URL
names a server), the app in-process, a GraphQL helper, polling."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from tocsin.app import create_app
from tocsin.resolvers.tokens import create_token
from tocsin.settings import Settings
from tocsin.storage.database import create_engine
from tocsin.storage.enums import Role
from tocsin.storage.migrate import upgrade_to_head

PG_URL = os.environ.get("TOCSIN_TEST_DATABASE_URL")
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
# Named after the database of TOCSIN_TEST_DATABASE_URL, so that two runs against one
# server (side by side, with different database names) never drop each other's copies.
_PG_NAME = PG_URL.rsplit("/", 1)[1] if PG_URL else "tocsin"
TEMPLATE_DB = f"{_PG_NAME}_template"
TEST_DB_PREFIX = f"{_PG_NAME}_t_"


def _pg_admin_url() -> str:
    assert PG_URL is not None
    return PG_URL.rsplit("/", 1)[0] + "/postgres"


async def _pg_execute(sql: str) -> None:
    import asyncpg

    dsn = _pg_admin_url().replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _drop_test_databases() -> None:
    """Databases left by an earlier run (each test makes one)."""
    import asyncpg

    dsn = _pg_admin_url().replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(dsn)
    try:
        names = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", TEST_DB_PREFIX + "%"
        )
        for record in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{record[0]}" WITH (FORCE)')
    finally:
        await connection.close()


async def migrate_template(tmp_dir: Path) -> str:
    """A migrated database that each test copies (much faster than migrating each time)."""
    if PG_URL:
        await _drop_test_databases()
        await _pg_execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await _pg_execute(f"CREATE DATABASE {TEMPLATE_DB}")
        url = PG_URL.rsplit("/", 1)[0] + f"/{TEMPLATE_DB}"
    else:
        url = f"sqlite+aiosqlite:///{tmp_dir / 'tocsin.db'}"
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return url


async def new_database_url(template: str, data_dir: Path) -> str:
    if PG_URL:
        name = f"{TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
        await _pg_execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        return PG_URL.rsplit("/", 1)[0] + f"/{name}"
    target = data_dir / "tocsin.db"
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template.split("///", 1)[1], target)
    return f"sqlite+aiosqlite:///{target}"


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_keys": Fernet.generate_key().decode(),
        "allowed_private_networks": LOOPBACK,
        "delivery_timeout": 3.0,
        "retry_base_delay": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """The app in-process, spoken to over HTTP the way a client would."""

    client: httpx.AsyncClient
    app: Any
    admin_token: str

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """Data of an operation that must succeed without any GraphQL error."""
        body = await self.gql(query, variables, token=token)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )

    async def token(self, role: Role, name: str | None = None) -> str:
        value, _, _ = await create_token(
            db=self.services.db, actor="test", name=name or role.value.lower(), role=role
        )
        assert value is not None
        return value


async def start_api(settings: Settings, *, run_worker: bool = True) -> AsyncIterator[Api]:
    app = create_app(settings, run_worker=run_worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
            value, _, _ = await create_token(
                db=app.state.services.db, actor="test", name="admin", role=Role.ADMIN
            )
            assert value is not None
            yield Api(client=client, app=app, admin_token=value)


async def eventually(check: Any, *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async check until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)
