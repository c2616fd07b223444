"""Browser fixtures: Debian's chromium driven by Playwright (the PyPI package), one real
`tocsin serve` and one browser per module, and a page per test whose requests to any other
origin are aborted and recorded.

The browser tests do not depend on the database, so they run once per CI: on the SQLite
run, and are skipped when TOCSIN_TEST_DATABASE_URL names PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.server import ADMIN_TOKEN, TocsinServer, server_env
from tests.peers import HttpReceiver, LocalCA
from tests.support import PG_URL

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    """Debian's chromium (installed by .ci/run), or TOCSIN_TEST_CHROMIUM."""
    for candidate in (os.environ.get("TOCSIN_TEST_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    return found


def browser_skip_reason() -> str | None:
    if PG_URL:
        return "browser tests run once, on the SQLite run (they do not depend on the database)"
    if chromium_path() is None:
        return "no chromium binary (apt-get install chromium; .ci/run does)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Tab:
    """A page of a fresh browser context, with the requests it made to other origins."""

    page: Any
    base_url: str
    foreign: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    async def sign_in(self, token: str = ADMIN_TOKEN) -> None:
        await self.page.goto(self.base_url + "/")
        await self.page.get_by_label("API token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
async def web_server(
    tmp_path_factory: pytest.TempPathFactory, ca: LocalCA, _receiver: HttpReceiver
) -> AsyncIterator[TocsinServer]:
    """`tocsin serve` on the embedded SQLite default, trusting the test CA (SMTP over TLS),
    with every vendor API base on the loopback receiver: nothing a test saves is sent off
    the machine."""
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("web")
    ca_file = root / "ca.pem"
    ca.ca.cert_pem.write_to_path(str(ca_file))
    env = server_env(
        root / "data",
        SSL_CERT_FILE=str(ca_file),
        TOCSIN_DELIVERY_TIMEOUT="3",
        TOCSIN_TELEGRAM_API_BASE=_receiver.base_url + "/telegram",
        TOCSIN_SLACK_API_BASE=_receiver.base_url + "/slack-api",
        TOCSIN_SENDGRID_API_BASE=_receiver.base_url + "/sendgrid",
    )
    async with TocsinServer(env, log_dir=root) as server:
        yield server


@pytest.fixture(scope="module")
async def browser(web_server: TocsinServer) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def tab(browser: Any, web_server: TocsinServer) -> AsyncIterator[Tab]:
    """A fresh context (own sessionStorage) where any request off the server is aborted."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    opened = Tab(page=await context.new_page(), base_url=web_server.base_url)
    origin = urlsplit(web_server.base_url).netloc

    async def only_the_server(route: Any) -> None:
        url = route.request.url
        opened.requested.append(url)
        if urlsplit(url).netloc != origin and not url.startswith("data:"):
            opened.foreign.append(url)
            await route.abort()
        else:
            await route.continue_()

    await context.route("**/*", only_the_server)
    try:
        yield opened
    finally:
        await context.close()
