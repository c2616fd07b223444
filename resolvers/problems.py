"""Expected failures as data: a Problem becomes a GraphQL ``UserError``."""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.errors import ProblemError as ProblemError  # re-exported


@dataclass(frozen=True, slots=True)
class Problem:
    field: list[str] | None
    code: str
    message: str


@dataclass
class Problems:
    """Collects problems while an input is checked."""

    items: list[Problem] = field(default_factory=list)

    def add(self, path: list[str] | str | None, code: str, message: str) -> None:
        if isinstance(path, str):
            path = [path]
        self.items.append(Problem(path, code, message))

    def __bool__(self) -> bool:
        return bool(self.items)


def not_found(what: str, path: str = "id") -> Problem:
    return Problem([path], "NOT_FOUND", f"No {what} has this id.")
