"""`tocsin serve` as an operator runs it: a real process on a fresh data directory with
the embedded SQLite default, its first ADMIN token, GraphiQL, the body limit, a restart,
`tocsin token create`, the bootstrap token, and bad settings that stop start-up."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import TOCSIN, cli_env, free_port, run_cli

TOKEN = re.compile(r"\btcs_[A-Za-z0-9_-]{20,}")
VIEWER = {"query": "{ viewer { name role } }"}
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}


class Served:
    """A running `tocsin serve`: its URL, and what it printed so far."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, out: Path, err: Path):
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self._out, self._err = out, err

    @property
    def stdout(self) -> str:
        return self._out.read_text()

    @property
    def stderr(self) -> str:
        return self._err.read_text()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def viewer(self, token: str) -> dict[str, Any]:
        with self.client(token) as client:
            response = client.post("/graphql", json=VIEWER)
        assert response.status_code == 200, response.text
        viewer: dict[str, Any] = response.json()["data"]["viewer"]
        return viewer


@contextmanager
def serve(data_dir: Path, logs: Path, **variables: str) -> Iterator[Served]:
    """`tocsin serve` on a free port, ready (/healthz 200) on entry, stopped with SIGTERM
    on exit (and killed if it will not stop, or if the block failed)."""
    env = cli_env(DATA_DIR=data_dir, **variables)
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{port}.out", logs / f"{port}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*TOCSIN, "serve", "--port", str(port)], env=env, stdout=stdout, stderr=stderr
        )
    served = Served(process, port, out, err)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"tocsin serve exited:\n{served.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"not healthy in 30 s:\n{served.stderr[-3000:]}"
            try:
                if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield served
        process.send_signal(signal.SIGTERM)
        # a graceful stop: uvicorn shuts the app down, then re-raises the signal
        assert process.wait(timeout=15) in (0, -signal.SIGTERM), served.stderr[-3000:]
        assert "Application shutdown complete" in served.stderr
        assert "Traceback" not in served.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_first_start_restart_and_token_create(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # given a fresh data directory, no TOCSIN_DATABASE_URL and no TOCSIN_BOOTSTRAP_TOKEN
    with serve(data_dir, tmp_path / "logs") as server:
        # then the first start printed one ADMIN token, once, on stdout
        printed = TOKEN.findall(server.stdout)
        assert len(printed) == 1, server.stdout
        [admin] = printed
        assert "shown only this once" in server.stdout
        # and it works
        assert server.viewer(admin) == {"name": "admin", "role": "ADMIN"}
        # the embedded SQLite database and a private key file are in the data dir
        assert (data_dir / "tocsin.db").exists()
        assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600

        with server.client() as browser:
            # a browser opening /graphql gets GraphiQL
            page = browser.get("/graphql", headers=BROWSER)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "graphiql" in page.text.lower()
            # health, readiness (database and the in-process worker) and metrics
            assert browser.get("/healthz").status_code == 200
            ready = browser.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"ready": True})
            assert "tocsin_http_requests_total" in browser.get("/metrics").text

        with server.client(admin) as client:
            # a 20 MB body is refused...
            response = client.post(
                "/graphql",
                content=b"x" * (20 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 413
            assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        # ...and the server still serves
        assert server.viewer(admin)["role"] == "ADMIN"
    # (the log never shows a token's value)
    assert admin not in server.stderr

    # when it starts again on the same data dir
    with serve(data_dir, tmp_path / "logs") as server:
        # then no token is printed, and the first one still works
        assert TOKEN.findall(server.stdout) == []
        assert server.viewer(admin)["role"] == "ADMIN"

        # `tocsin token create` prints the new token, and nothing else, on stdout
        created = run_cli(
            "token", "create", "--name", "ci", "--role", "EDITOR", env=cli_env(DATA_DIR=data_dir)
        )
        assert created.returncode == 0, created.stderr
        assert TOKEN.fullmatch(created.stdout.strip()), created.stdout
        assert created.stdout.count("\n") == 1
        ci = created.stdout.strip()
        # and it works against the running server, with its role
        assert server.viewer(ci) == {"name": "ci", "role": "EDITOR"}
    assert ci not in server.stderr


def test_bootstrap_token_replaces_the_printed_one(tmp_path: Path) -> None:
    bootstrap = "tcs_e2e-operator-chosen-bootstrap-0123456789"
    with serve(tmp_path / "data", tmp_path / "logs", BOOTSTRAP_TOKEN=bootstrap) as server:
        # then no token is printed
        assert TOKEN.findall(server.stdout) == []
        assert "ADMIN API token" not in server.stdout
        # and the bootstrap value is an ADMIN token
        assert server.viewer(bootstrap) == {"name": "bootstrap", "role": "ADMIN"}
        with server.client(bootstrap) as client:
            tokens = client.post("/graphql", json={"query": "{ apiTokens { name } }"}).json()
        assert tokens == {"data": {"apiTokens": []}}
    assert bootstrap not in server.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DELIVERY_TIMEOUT", "abc"), ("ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/99")],
)
def test_bad_setting_stops_start_up(tmp_path: Path, variable: str, value: str) -> None:
    env = cli_env(DATA_DIR=tmp_path / "data", **{variable: value})
    result = run_cli("serve", "--port", str(free_port()), env=env, timeout=30)
    # then exit code 2 and one line on stderr naming the variable
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tocsin: TOCSIN_{variable} is invalid")
    assert result.stdout == ""
    # and nothing was created
    assert not (tmp_path / "data").exists()
