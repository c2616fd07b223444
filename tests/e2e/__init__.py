"""End-to-end tests: Tocsin run as real processes.

The helpers here run the ``tocsin`` command as an operator would (``server.py`` holds
the long-running server harness of the delivery tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("tocsin")
TOCSIN: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tocsin.cli"]


def cli_env(**variables: str | Path) -> dict[str, str]:
    """This process's environment without any TOCSIN_* variable, plus ``variables``
    (given without the prefix: ``cli_env(DATA_DIR=...)``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    env.update({f"TOCSIN_{name}": str(value) for name, value in variables.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOCSIN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def only_line_mentioning(stderr: str, word: str) -> str:
    """The one stderr line that mentions ``word`` (there must be exactly one)."""
    lines = [line for line in stderr.splitlines() if word in line]
    assert len(lines) == 1, stderr
    return lines[0]
