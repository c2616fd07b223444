"""No function in the delivery path is longer than about 50 lines (issue 8, acceptance 6):
one attempt, one decision, one query each, so that each reads on one screen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DELIVERY_PATH = (
    "worker*.py",
    "storage/claims.py",
    "storage/ingest.py",
    "storage/wakeup.py",
    "channels/*.py",
)
"The files scanned, as globs from the repository root."
MAX_LINES = 50


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, from its first statement after the docstring to its end."""
    body = function.body
    if ast.get_docstring(function) is not None and len(body) > 1:
        body = body[1:]
    end = function.end_lineno or body[-1].lineno
    return end - body[0].lineno + 1


def too_long(source: str, name: str) -> list[str]:
    """``file:line function (n lines)`` for each function of ``source`` over the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = body_lines(node)
            if lines > MAX_LINES:
                found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_every_pattern_of_the_delivery_path_names_files() -> None:
    for pattern in DELIVERY_PATH:
        assert list(ROOT.glob(pattern)), f"{pattern} matches no file: update DELIVERY_PATH"


@pytest.mark.parametrize(
    "path",
    sorted({p for pattern in DELIVERY_PATH for p in ROOT.glob(pattern)}),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_function_in_the_delivery_path_is_longer_than_50_lines(path: Path) -> None:
    assert too_long(path.read_text(), str(path.relative_to(ROOT))) == []


def test_the_count_starts_after_the_docstring_and_flags_a_long_function() -> None:
    statements = "\n".join(f"    x{n} = {n}" for n in range(MAX_LINES))
    fits = f'def fits():\n    """Doc\n    string."""\n{statements}\n'
    assert too_long(fits, "fits.py") == []
    assert too_long(fits + "    return x0\n", "long.py") == ["long.py:1 fits (51 lines)"]
