"""Tocsin's exceptions, in one tree:

* TocsinError
  * ConfigurationError - a setting is unusable (the message names it, never its value);
    also the SecretBox's: keys that are no Fernet keys, or cannot open a stored secret
    * DatabaseUnavailable - the database cannot be reached or opened
    * OutboxOwnedElsewhere - another process delivers from this SQLite database
  * DestinationNotAllowed - (also an OSError) egress refuses the address
  * NotAnAddress - (also a ValueError) a host that ends in a number but is no address
  * InvalidSigningSecret - (also a ValueError) a signing secret that is not ``whsec_``
  * ProblemError - a write aborted with problems for the user (``UserError``s)
  * BodyTooLarge - a request body past its limit
  * EmitRefused - (also a GraphQLError) an emit not stored, with when to try again;
    defined in ``resolvers/events.py`` so that only the GraphQL layer imports graphql

A second base is kept where callers depend on it: connection libraries treat an
``OSError`` as a failed lookup, ``ValueError`` is what validation catches, and GraphQL
shows a ``GraphQLError``'s extensions. A sender never raises for a remote failure: it
answers a ``SendResult`` (``channels/base.py``).

This module imports nothing of Tocsin, so every other module may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "BodyTooLarge",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DestinationNotAllowed",
    "InvalidSigningSecret",
    "NotAnAddress",
    "OutboxOwnedElsewhere",
    "ProblemError",
    "TocsinError",
]


class TocsinError(Exception):
    """The root of every exception Tocsin raises on purpose."""


class ConfigurationError(TocsinError):
    """A setting is unusable; the message names the variable and never carries its value."""


class DatabaseUnavailable(ConfigurationError):
    """The database cannot be reached or opened (unreachable server, wrong password, no
    such database, a file that cannot be created); ``reason`` is the driver's one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot use the database: {reason}")
        self.reason = reason

    @classmethod
    def from_error(cls, error: BaseException, *, password: str | None) -> DatabaseUnavailable:
        cause: BaseException = getattr(error, "orig", None) or error
        while cause.__cause__ is not None:  # the driver's own, e.g. InvalidPasswordError
            cause = cause.__cause__
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0] if lines else ''}"[:300]
        if password:  # drivers do not repeat it; this makes sure
            reason = reason.replace(str(password), "***")
        return cls(reason)


class OutboxOwnedElsewhere(ConfigurationError):
    """Another process delivers from this SQLite database."""


class DestinationNotAllowed(TocsinError, OSError):
    """A destination names or resolves only to addresses Tocsin may not connect to.

    An ``OSError`` so that connection libraries treat it like a failed lookup and
    keep it in the exception chain; ``reason`` is safe to show to users.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAnAddress(TocsinError, ValueError):
    """A host that ends in a number (so resolvers read it as IPv4) but is no valid address."""


class InvalidSigningSecret(TocsinError, ValueError):
    """The signing secret is not ``whsec_<base64>``; the message carries no part of it."""


class _Problem(Protocol):
    """What ProblemError reads of a ``resolvers.problems.Problem``."""

    @property
    def field(self) -> list[str] | None: ...
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...


class ProblemError(TocsinError):
    """Raised inside a write to abort the transaction and answer the problems. When it
    reaches GraphQL (a field without an ``errors`` list) it is shown, not masked, with the
    problems under ``extensions.userErrors``."""

    def __init__(self, problems: Sequence[_Problem]) -> None:
        super().__init__(problems[0].message if problems else "invalid input")
        self.problems: list[Any] = list(problems)
        self.extensions = {
            "code": problems[0].code if problems else "BAD_USER_INPUT",
            "userErrors": [
                {"field": p.field, "code": p.code, "message": p.message} for p in problems
            ],
        }


class BodyTooLarge(TocsinError):
    """A request body larger than its endpoint accepts; nothing of it was parsed."""
