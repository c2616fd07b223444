"""Expected failures as data: a Problem becomes a GraphQL ``UserError``."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class ProblemError(Exception):
    """Raised inside a write to abort the transaction and answer the problems. When it
    reaches GraphQL (a field without an ``errors`` list) it is shown, not masked, with the
    problems under ``extensions.userErrors``."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].message if problems else "invalid input")
        self.problems = problems
        self.extensions = {
            "code": problems[0].code if problems else "BAD_USER_INPUT",
            "userErrors": [
                {"field": p.field, "code": p.code, "message": p.message} for p in problems
            ],
        }


def not_found(what: str, path: str = "id") -> Problem:
    return Problem([path], "NOT_FOUND", f"No {what} has this id.")
