"""The registry: one sender per ChannelKind."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from tocsin.channels.base import Kind
from tocsin.channels.registry import KINDS, SENDERS, ChannelKind, sender_for
from tocsin.schema.inputs import KIND_INPUTS, ChannelInputBase, camel_case
from tocsin.schema.types import KIND_TYPES


def test_every_channel_kind_has_its_sender() -> None:
    assert set(SENDERS) == {"SLACK", "WEBHOOK", "EMAIL", "DISCORD", "TELEGRAM", "TEAMS"}
    assert all(sender.kind == kind for kind, sender in SENDERS.items())


def test_sender_for_accepts_any_case_and_refuses_unknown_kinds() -> None:
    assert sender_for("slack") is SENDERS["SLACK"]
    with pytest.raises(KeyError, match="no sender for channel kind 'PAGER'"):
        sender_for("PAGER")


# -- issue 8: a kind is one module; nothing outside channels/ and schema/ names one ------

REPO = Path(__file__).resolve().parents[2]
KIND_DIRS = ("channels", "schema", "tests")
NOT_THE_SERVICE = {
    "bench": "benchmarks, run by hand: they drive the webhook kind on purpose",
    ".venv": "installed packages",
}


def kind_names_in(source: str) -> list[str]:
    """Where a kind is named as an identifier: a string that is a kind ("SLACK", "slack",
    "Slack"), or an attribute such as ``ChannelKind.SLACK``; comments and prose don't count."""
    kinds = {kind.lower() for kind in KINDS}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.lower() in kinds:
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr.lower() in kinds:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_no_kind_is_named_outside_channels_schema_and_tests() -> None:
    offending = {}
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in KIND_DIRS or relative.parts[0] in NOT_THE_SERVICE:
            continue
        found = kind_names_in(path.read_text())
        if found:
            offending[relative.as_posix()] = found
    assert offending == {}


def test_the_scan_would_see_a_kind_named_in_code() -> None:
    code = 'if row.kind == "EMAIL" or kind is ChannelKind.TEAMS:\n    label = "Slack"\n'
    assert sorted(kind_names_in(code)) == ["line 1: 'EMAIL'", "line 1: .TEAMS", "line 2: 'Slack'"]
    assert kind_names_in('"""Slack, Discord and Telegram messages."""\n# EMAIL\n') == []


def test_the_registry_the_enum_and_the_schema_agree() -> None:
    assert set(KINDS) == {kind.value for kind in ChannelKind}
    assert set(KIND_TYPES) == set(KINDS)
    assert set(KIND_INPUTS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_save_input_has_exactly_the_declared_fields(kind: str) -> None:
    common = {item.name for item in dataclasses.fields(ChannelInputBase)}
    own = {item.name for item in dataclasses.fields(KIND_INPUTS[kind])} - common
    assert {camel_case(name) for name in own} == {item.input for item in KINDS[kind].fields}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_what_its_module_says(kind: str) -> None:
    spec = KINDS[kind]
    assert spec.label and spec.fields and spec.required
    declared = {item.stored_as for item in spec.fields}
    shown = {key for item in spec.fields if item.shows for key in item.shows(None)}
    assert set(spec.required) <= declared
    assert (
        set(spec.config_defaults()) == {i.stored_as for i in spec.fields if not i.private} | shown
    )
    # Every kind renders digests and sends what it rendered (issue 9).
    assert type(spec).render_digest is not Kind.render_digest
    assert type(spec).send_rendered is not Kind.send_rendered
