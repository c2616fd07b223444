"""Screenshots of the settings page for the README, in headless Chromium.

    python scripts/screenshots.py [--out docs] [--chromium /usr/bin/chromium]

Starts `tocsin serve` on a throwaway data directory and a free loopback port, saves a
few channels and emits a few events through the API (their destinations are a closed
loopback port, so nothing leaves the machine and the Delivery log shows failures too),
signs in and writes ``settings-desktop.png`` (1280 px) and ``settings-375.png`` (375 px)
into ``--out``. Needs the dev extra (Playwright) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "tcs_screenshots-admin-token-0123456789abcdef"  # noqa: S105 - a throwaway server
CLOSED = "http://127.0.0.1:9/hooks/"  # the discard port: nothing listens there
SEED = [
    (
        "mutation($i: SlackChannelInput!) { saveSlackChannel(input: $i) { errors { message } } }",
        {"name": "#data-alerts", "webhookUrl": CLOSED + "chat", "minPriority": "HIGH"},
    ),
    (
        "mutation($i: WebhookChannelInput!) {"
        " saveWebhookChannel(input: $i) { errors { message } } }",
        {"name": "incident bridge", "url": CLOSED + "bridge", "maxRetries": 0},
    ),
]
EVENTS = [
    ("refresh_failed", "dbt build failed in staging"),
    ("proposal_ready", "Proposal 12 is ready for promotion"),
    ("deploy_succeeded", "Release 2026.12.3 is live"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env |= {
        "TOCSIN_DATA_DIR": str(data_dir),
        "TOCSIN_BOOTSTRAP_TOKEN": TOKEN,
        "TOCSIN_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "TOCSIN_DELIVERY_TIMEOUT": "1",
        "TOCSIN_RETRY_BASE_DELAY": "60",
    }
    tocsin = shutil.which("tocsin") or str(Path(sys.executable).with_name("tocsin"))
    command = [tocsin, "serve", "--host", "127.0.0.1", "--port", str(port)]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet)  # noqa: S603


async def seed(base: str) -> None:
    """Waits for the server, then saves the channels and emits the events."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await c.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("tocsin serve did not become ready in 30 s")
            await asyncio.sleep(0.2)
        for query, variables in SEED:
            await c.post("/graphql", json={"query": query, "variables": {"i": variables}})
        emit = "mutation($i: EmitEventInput!) { emitEvent(input: $i) { errors { message } } }"
        for kind, title in EVENTS:
            await c.post(
                "/graphql", json={"query": emit, "variables": {"i": {"type": kind, "title": title}}}
            )
        await asyncio.sleep(2)  # the worker records the failed attempts


async def shoot(base: str, out: Path, chromium: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, width in (("settings-desktop.png", 1280), ("settings-375.png", 375)):
            page: Any = await browser.new_page(viewport={"width": width, "height": 900})
            await page.goto(base + "/")
            await page.get_by_label("API token").fill(TOKEN)
            await page.get_by_role("button", name="Sign in").click()
            log = page.get_by_role("region", name="Delivery log")
            await log.get_by_role("row").nth(2).wait_for()
            if width > 600:  # the desktop one shows the Activity list open
                await page.get_by_role("button", name="Activity").click()
                await (
                    page.get_by_role("region", name="Recent events")
                    .get_by_role("listitem")
                    .first.wait_for()
                )
            await page.screenshot(path=str(out / name), full_page=True)
            await page.close()
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), port)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(seed(base))
            asyncio.run(shoot(base, args.out, args.chromium))
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"wrote {args.out / 'settings-desktop.png'} and {args.out / 'settings-375.png'}")


if __name__ == "__main__":
    main()
