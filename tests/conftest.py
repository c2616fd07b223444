"""Fixtures: a fresh database per test, settings, and the app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
