"""The Dockerfile and compose.yaml (issue 12): they parse, every command they run is one
the CLI accepts, every TOCSIN_* variable they set is one settings.py knows, and the
cluster is the documented one (PostgreSQL, two APIs, three workers, health checks)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tocsin.cli import _parser
from tocsin.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = (ROOT / "compose.yaml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def compose_commands() -> list[list[str]]:
    """Every ``command:`` of compose.yaml (written as JSON-style flow lists)."""
    found = re.findall(r"^\s*command:\s*(\[.*\])\s*$", COMPOSE, flags=re.M)
    return [json.loads(command) for command in found]


def dockerfile_cmd() -> list[str]:
    [cmd] = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, flags=re.M)
    command: list[str] = json.loads(cmd)
    return command


def accepted(command: list[str]) -> Any:
    """The CLI's reading of ``command``; SystemExit (argparse) if it refuses it."""
    assert command[0] == "tocsin", command
    return _parser().parse_args(command[1:])


@pytest.mark.parametrize("command", [*compose_commands(), dockerfile_cmd()], ids=" ".join)
def test_every_command_exists_in_the_cli(command: list[str]) -> None:
    args = accepted(command)
    assert args.command in {"serve", "worker"}


def test_compose_runs_two_apis_without_workers_and_workers_with_health_ports() -> None:
    parsed = [accepted(command) for command in compose_commands()]
    apis = [a for a in parsed if a.command == "serve"]
    workers = [a for a in parsed if a.command == "worker"]
    assert apis and all(a.no_worker for a in apis)
    assert workers and all(a.health_port == 9000 for a in workers)


def test_every_tocsin_variable_set_is_a_setting() -> None:
    names = set(re.findall(r"\b(TOCSIN_[A-Z_]+)\b", COMPOSE + DOCKERFILE))
    known = {f"TOCSIN_{field.upper()}" for field in Settings.model_fields}
    assert names, "compose.yaml and the Dockerfile set no TOCSIN_* variable?"
    assert names - known == set()


def test_the_image_is_slim_non_root_and_installs_the_package() -> None:
    assert re.search(r"^FROM python:3\.11-slim\s*$", DOCKERFILE, flags=re.M)
    [user] = re.findall(r"^USER\s+(\S+)\s*$", DOCKERFILE, flags=re.M)
    assert user not in {"root", "0"}
    assert re.search(r"pip install /tmp/tocsin-src", DOCKERFILE)
    assert "HEALTHCHECK" in DOCKERFILE


def test_compose_is_the_documented_cluster() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the checks above ran")
    services = yaml.safe_load(COMPOSE)["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    apis = [s for s in services.values() if "serve" in s.get("command", [])]
    workers = [s for s in services.values() if "worker" in s.get("command", [])]
    assert (len(apis), len(workers)) == (2, 3)
    for service in apis + workers:
        assert service["healthcheck"]["test"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_has_the_services_even_without_yaml() -> None:
    # a small structural check that does not need PyYAML
    services = re.findall(r"^  ([a-z0-9-]+):\s*$", COMPOSE.split("\nservices:\n", 1)[1], re.M)
    assert services[:6] == ["postgres", "api-1", "api-2", "worker-1", "worker-2", "worker-3"]
    assert COMPOSE.count("<<: *api") == 2 and COMPOSE.count("<<: *worker") == 3
    assert COMPOSE.count("healthcheck:") >= 3
