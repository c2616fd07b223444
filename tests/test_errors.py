"""One exception tree: every exception Tocsin raises on purpose is a TocsinError, keeps
the base its callers catch it by, and is still importable where it was."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLError

from tocsin import errors
from tocsin.app import BodyTooLarge as AppBodyTooLarge
from tocsin.channels.egress import DestinationNotAllowed, NotAnAddress
from tocsin.channels.signing import InvalidSigningSecret, decode_secret
from tocsin.resolvers.events import EmitRefused
from tocsin.resolvers.problems import Problem, ProblemError
from tocsin.settings import ConfigurationError, DatabaseUnavailable
from tocsin.storage.outbox_lock import OutboxOwnedElsewhere

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (ConfigurationError, None),
        (DatabaseUnavailable, ConfigurationError),
        (OutboxOwnedElsewhere, ConfigurationError),
        (DestinationNotAllowed, OSError),  # aiohttp and httpx keep it in the chain
        (NotAnAddress, ValueError),
        (InvalidSigningSecret, ValueError),  # the webhook kind catches ValueError
        (ProblemError, None),
        (AppBodyTooLarge, None),
        (EmitRefused, GraphQLError),  # GraphQL shows its extensions, unmasked
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_every_error_is_a_tocsin_error_and_keeps_its_base(
    error: type[Exception], also: type[Exception] | None
) -> None:
    assert issubclass(error, errors.TocsinError)
    if also is not None:
        assert issubclass(error, also)


def test_the_old_homes_answer_the_same_classes() -> None:
    assert ConfigurationError is errors.ConfigurationError
    assert DatabaseUnavailable is errors.DatabaseUnavailable
    assert OutboxOwnedElsewhere is errors.OutboxOwnedElsewhere
    assert DestinationNotAllowed is errors.DestinationNotAllowed
    assert NotAnAddress is errors.NotAnAddress
    assert InvalidSigningSecret is errors.InvalidSigningSecret
    assert ProblemError is errors.ProblemError
    assert AppBodyTooLarge is errors.BodyTooLarge


def test_errors_keep_what_callers_read_of_them() -> None:
    refused = DestinationNotAllowed("destination not allowed: loopback")
    assert (str(refused), refused.reason, refused.errno) == (refused.reason, refused.reason, None)
    unavailable = DatabaseUnavailable.from_error(OSError("refused pw1\nmore"), password="pw1")
    assert unavailable.reason == "OSError: refused ***"
    assert str(unavailable) == "cannot use the database: OSError: refused ***"
    problem = ProblemError([Problem(["input", "url"], "INVALID", "Not a URL.")])
    assert str(problem) == "Not a URL."
    assert problem.extensions == {
        "code": "INVALID",
        "userErrors": [{"field": ["input", "url"], "code": "INVALID", "message": "Not a URL."}],
    }
    emit = EmitRefused.rate_limited(2)
    assert emit.extensions == {"code": "RATE_LIMITED", "retryAfter": 2}
    with pytest.raises(ValueError, match="not a valid whsec_ secret"):
        decode_secret("whsec_!!!")


def test_errors_py_imports_nothing_of_tocsin() -> None:
    tree = ast.parse((ROOT / "errors.py").read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert imported and not [m for m in imported if m and m.startswith("tocsin")]


def test_the_tree_is_drawn_in_the_docstring_with_every_class() -> None:
    drawn = errors.__doc__ or ""
    for name in [*errors.__all__, "EmitRefused"]:
        assert re.search(rf"^ *\* {name}\b", drawn, re.MULTILINE), name


def test_settings_and_errors_load_no_graphql() -> None:
    # The delivery core imports errors.py; graphql stays the GraphQL layer's.
    code = "import sys, tocsin.settings, tocsin.errors; print('graphql' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
