"""The delivery core (the worker, storage/ and channels/) is free of the GraphQL layer:
none of its modules imports tocsin.resolvers or tocsin.schema, or the services bundle
that does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted(
    [
        *ROOT.glob("worker*.py"),
        *(ROOT / "storage").rglob("*.py"),
        *(ROOT / "channels").rglob("*.py"),
    ]
)
FORBIDDEN = ("tocsin.resolvers", "tocsin.schema", "tocsin.services", "tocsin.app")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_is_scanned() -> None:
    scanned = {path.relative_to(ROOT).as_posix() for path in CORE}
    assert {"worker.py", "storage/claims.py", "channels/registry.py"} <= scanned


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_core_module_imports_the_graphql_layer(path: Path) -> None:
    wrong = sorted(name for name in imported_modules(path) if name.startswith(FORBIDDEN))
    assert wrong == [], f"{path.relative_to(ROOT)} imports {wrong}"
