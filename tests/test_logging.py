"""Logging is configured by the process that runs Tocsin (the CLI), never by importing a
module; the CLI keeps the HTTP libraries, which log every URL at INFO, to warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIETED = ("httpx", "httpcore", "httpx_aiohttp", "aiohttp.client")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )


def test_importing_every_module_configures_no_logging() -> None:
    # given every module of the package, imported as a process would
    modules = sorted(
        "tocsin." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in ROOT.glob("**/*.py")
        if not {"tests", "bench", "migrations", ".venv", ".ci"} & set(p.relative_to(ROOT).parts)
        and p.name != "__init__.py"
    )
    code = f"""
import importlib, logging, sys
from pathlib import Path
root, venv = Path({str(ROOT)!r}), Path(sys.prefix)
calls = []
def recorded(name):
    real = getattr(logging.Logger, name)
    def call(self, *args, **kwargs):
        caller = Path(sys._getframe(1).f_code.co_filename)
        if caller.is_relative_to(root) and not caller.is_relative_to(venv):
            calls.append(f"{{caller.name}}: {{self.name}}.{{name}}")
        return real(self, *args, **kwargs)
    setattr(logging.Logger, name, call)
for name in ("setLevel", "addHandler", "addFilter"):
    recorded(name)
for name in {modules!r}:
    importlib.import_module(name)
print(calls, logging.root.handlers)
"""
    # then none of them sets a logger's level, handler or filter, nor the root's handlers
    assert run(code).stdout.strip() == "[] []"


def test_the_cli_keeps_http_libraries_to_warnings() -> None:
    # given the CLI's logging set-up
    code = f"""
import logging
from tocsin.cli import _configure_logging
_configure_logging()
for name in {QUIETED!r}:
    logging.getLogger(name).info("HTTP Request: POST https://hooks.example/services/T0/B0/x")
    logging.getLogger(name).warning("%s warns", name)
logging.getLogger("tocsin.worker").info("the worker speaks")
"""
    # when each library logs a request at INFO, then only its warnings reach the log
    log = run(code).stderr
    assert "hooks.example" not in log
    assert all(f"{name} warns" in log for name in QUIETED)
    assert "the worker speaks" in log
