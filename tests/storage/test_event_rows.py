"""The group commit builds event rows without validation (model_construct): that only
works once SQLAlchemy's mappers are configured, which a process whose first write is an
emit has not done yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_THING_A_PROCESS_DOES = """
from datetime import UTC, datetime
from tocsin.storage.ingest import NewEvent, _event_row
now = datetime.now(UTC)
new = NewEvent(type="deploy_succeeded", title="t", detail=None, metadata={"k": 1},
               priority="INFO", dedup_key=None, idempotency_key=None, source="ci",
               occurred_at=now)
row = _event_row(new, deduplicated=False, now=now)
print(row.title, row.metadata_["k"], row.created_at == now)
"""


def test_an_event_row_is_readable_in_a_fresh_process(tmp_path: Path) -> None:
    (tmp_path / "tocsin").symlink_to(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", FIRST_THING_A_PROCESS_DOES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["t", "1", "True"], done.stderr
