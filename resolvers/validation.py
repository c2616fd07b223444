"""Input checks shared by the mutations (the channel fields' own live with the kinds, in
``channels/fields.py``). Each adds Problems; none touches storage."""

from __future__ import annotations

import math
from typing import Any

from tocsin.resolvers.problems import Problems

MAX_NAME = 200
MAX_RETRIES = 20


def check_name(problems: Problems, path: str, value: str, *, max_length: int = MAX_NAME) -> None:
    if not value.strip():
        problems.add(path, "REQUIRED", "Enter a name.")
    elif len(value) > max_length:
        problems.add(path, "TOO_LONG", f"Use at most {max_length} characters.")


def check_max_retries(problems: Problems, path: str, value: int) -> None:
    if not 0 <= value <= MAX_RETRIES:
        problems.add(path, "OUT_OF_RANGE", f"Retries are from 0 to {MAX_RETRIES}.")


def check_event_types(problems: Problems, path: str, names: list[str], known: set[str]) -> None:
    for index, name in enumerate(names):
        if name not in known:
            problems.add([path, str(index)], "UNKNOWN_EVENT_TYPE", f"No event type {name!r}.")


def check_metadata_match(problems: Problems, path: str, value: Any) -> dict[str, list[str]]:
    """{"key": ["a", "b"]} or {"key": "a"}: an event matches when every key has one value."""
    message = 'Use an object such as {"environment": ["production"]}.'
    if not isinstance(value, dict) or not value:
        problems.add(path, "INVALID_METADATA_MATCH", message)
        return {}
    result: dict[str, list[str]] = {}
    for key, wanted in value.items():
        options = [wanted] if isinstance(wanted, str | int | float | bool) else wanted
        if (
            not isinstance(options, list)
            or not options
            or not all(isinstance(o, str | int | float | bool) for o in options)
            or non_finite_at(options) is not None
        ):
            problems.add([path, key], "INVALID_METADATA_MATCH", message)
            continue
        result[key] = [str(o) for o in options]
    return result


def non_finite_at(value: Any) -> str | None:
    """Where ``value`` holds a number JSON cannot carry (NaN, or beyond a double's range,
    such as 1e400), as ``a.b[2]`` (``""`` for ``value`` itself); None when it holds none."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:  # a loop, not recursion: a value may be nested a thousand levels deep
        current, path = pending.pop()
        if isinstance(current, float) and not math.isfinite(current):
            return path
        children: list[tuple[Any, str]] = []
        if isinstance(current, dict):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in current.items()]
        elif isinstance(current, list | tuple):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(current)]
        pending.extend(reversed(children))  # the first one found is the first in the value
    return None


def check_event_categories(
    problems: Problems, path: str, names: list[str], known: set[str]
) -> None:
    for index, name in enumerate(names):
        if name not in known:
            listed = ", ".join(sorted(known))
            problems.add(
                [path, str(index)],
                "UNKNOWN_CATEGORY",
                f"No event type is in the category {name!r}; the categories are {listed}.",
            )
