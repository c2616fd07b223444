"""schema.graphql at the root is the exported schema, and keeps the contract's names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tocsin.schema import schema

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_schema_graphql_is_current() -> None:
    exported = (ROOT / "schema.graphql").read_text()
    assert exported.strip() == schema.as_str().strip(), (
        "schema.graphql is stale: run `tocsin schema > schema.graphql`"
    )


@pytest.mark.skipif(not CHECKER.exists(), reason="the shared contract checker is not here")
def test_schema_keeps_the_contract() -> None:
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
