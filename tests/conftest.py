"""Fixtures: a fresh database per test, settings, and the app in-process."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.peers import HttpReceiver, LocalCA, SmtpServer
from tests.support import Api, make_settings, migrate_template, new_database_url, start_api
from tocsin.settings import Settings


@pytest.fixture(scope="session")
async def template_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return await migrate_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
async def database_url(template_database: str, tmp_path: Path) -> str:
    return await new_database_url(template_database, tmp_path / "data")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in start_api(settings, run_worker=False):
        yield value


@pytest.fixture(scope="session")
def ca() -> LocalCA:
    return LocalCA()


@pytest.fixture(scope="session")
async def _receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(_receiver: HttpReceiver) -> HttpReceiver:
    """The plain-HTTP receiver, with no requests recorded and nothing programmed."""
    _receiver.reset()
    return _receiver


@pytest.fixture(scope="session")
async def _smtp_starttls(ca: LocalCA) -> AsyncIterator[SmtpServer]:
    async with SmtpServer(ca=ca, mode="STARTTLS") as server:
        yield server


@pytest.fixture
def smtp_server(_smtp_starttls: SmtpServer) -> SmtpServer:
    """Requires STARTTLS, then AUTH as ``smtp_server.username`` / ``smtp_server.password``."""
    _smtp_starttls.reset()
    return _smtp_starttls


@pytest.fixture
async def live(
    tmp_path: Path, database_url: str, receiver: HttpReceiver, ca: LocalCA
) -> AsyncIterator[Api]:
    """The app with its delivery worker, Telegram and Slack's API pointed at the receiver, the
    test CA trusted."""
    settings = make_settings(
        tmp_path / "data",
        database_url,
        telegram_api_base=receiver.base_url,
        slack_api_base=receiver.base_url,
        sendgrid_api_base=receiver.base_url,
    )
    async for value in start_api(settings, run_worker=True):
        services = value.services
        services.send_context = dataclasses.replace(
            services.send_context, ssl_context=ca.client_context()
        )
        yield value
