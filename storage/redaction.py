"""Redaction of stored secrets from every log record, whatever logger or handler made it.

Two parts:

- ``secret_registry``: the process-wide set of secret values Tocsin has handled, fed by
  ``SecretBox`` whenever it encrypts or decrypts (and with its own keys). For each value it
  keeps the pieces that would give it away on their own: a URL's path, query, credentials
  and random-looking path segments; a Telegram bot token's secret half (which appears in
  API URLs after ``/bot``); a ``whsec_`` secret's base64; each word of a header value such
  as ``Bearer <token>``; and their URL-, JSON- and base64 encodings.
- a log record factory (``logging.setLogRecordFactory``) that rewrites every new record
  whose message, arguments, traceback or stack contains one of them.

Why a record factory rather than a handler filter: a filter only guards the handlers that
exist when it is attached, and handlers come and go (uvicorn installs its own when it
starts, pytest's ``caplog`` one per test); every record, from any logger, is made by the
factory. It is installed by ``open_services`` (and for the whole life of a CLI process by
its logging set-up), never at import, and removed when the last of them closes.

Cost: a record's formatted message is checked with one substring search per detection
string (the shortest pieces of each secret, a few per secret), or, past SCAN_LIMIT of
them, with one set lookup per 6-gram of the message; only a record that contains a secret
is rewritten, and a traceback is formatted here only when the record carries one.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

REDACTED = "[redacted]"
MIN_FRAGMENT = 6
"Shorter pieces are not secret enough to be worth redacting everywhere (``/hook``, ``Bearer``)."
MIN_SEGMENT = 8
"How long a URL path segment or a header value's word must be to be redacted on its own."

SCAN_LIMIT = 48
"Up to this many detection strings, one substring search each beats a lookup per n-gram."


class SecretRegistry:
    """The secret values this process knows, and the strings that would give them away.

    Thread-safe: readers take the current tuples without a lock; writers rebuild them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._fragments: set[str] = set()
        self._detect: set[str] = set()
        self._by_prefix: dict[str, tuple[str, ...]] = {}
        self.detect: tuple[str, ...] = ()
        "Per secret, the fragments that contain none of its others: a leak contains one of them."
        self._replace: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self._values)} secrets)"

    def add_secrets(self, secrets: Mapping[str, Any]) -> None:
        """Remember every string inside ``secrets`` (nested mappings and lists included)."""
        new = [v for v in leaf_strings(secrets.values()) if v not in self._values]
        if new:
            self.add(*new)

    def add(self, *values: str) -> None:
        """Remember secret values (cheap for values already known)."""
        new = [v for v in values if v and v not in self._values]
        if not new:
            return
        with self._lock:
            for value in new:
                self._values.add(value)
                fragments = give_aways(value)
                self._fragments.update(fragments)
                self._detect.update(_minimal(fragments))
            # The index first: a reader that sees the new detection strings sees it too.
            self._by_prefix = _index_by_prefix(self._detect)
            self.detect = tuple(self._detect)
            self._replace = tuple(sorted(self._fragments, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._fragments.clear()
            self._detect.clear()
            self.detect = ()
            self._by_prefix = {}
            self._replace = ()

    def contains_secret(self, text: str) -> bool:
        detect = self.detect
        if len(detect) <= SCAN_LIMIT:
            return any(map(text.__contains__, detect))
        # Many secrets: look up each of the text's MIN_FRAGMENT-grams instead, so that the
        # cost follows the text's length, not the number of secrets.
        index = self._by_prefix
        grams = {text[i : i + MIN_FRAGMENT] for i in range(len(text) - MIN_FRAGMENT + 1)}
        return any(d in text for gram in grams.intersection(index) for d in index[gram])

    def redact(self, text: str) -> str:
        """``text`` with every known secret (and every piece of one) replaced by [redacted]."""
        if not self.contains_secret(text):
            return text
        for fragment in self._replace:
            if fragment in text:
                text = text.replace(fragment, REDACTED)
        return text


secret_registry = SecretRegistry()


def give_aways(value: str, *, shortest: int = MIN_FRAGMENT) -> set[str]:
    """Every string that would give ``value`` away, in the encodings it may be logged in;
    none shorter than ``shortest`` (shorter ones are too common to redact everywhere)."""
    pieces = {value}
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None:
            pieces.update((parts.path, parts.query, parts.password or "", parts.username or ""))
            pieces.update(
                s for s in parts.path.split("/") if len(s) >= MIN_SEGMENT and not s.isalpha()
            )
    elif ":" in value:  # a Telegram bot token, "<bot id>:<secret>"
        pieces.add(value.split(":", 1)[1])
    if value.startswith("whsec_"):
        pieces.add(value.removeprefix("whsec_"))
    words = value.split()  # "Bearer <token>", "Basic <credentials>"
    if len(words) > 1:
        pieces.update(w for w in words if len(w) >= MIN_SEGMENT and not w.isalpha())
    found = {variant for piece in pieces for variant in _encodings(piece)}
    found.add(base64.b64encode(value.encode()).decode())  # SMTP AUTH LOGIN sends this
    return {f for f in found if len(f) >= shortest}


def _index_by_prefix(detect: Iterable[str]) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for fragment in detect:
        index.setdefault(fragment[:MIN_FRAGMENT], []).append(fragment)
    return {prefix: tuple(fragments) for prefix, fragments in index.items()}


def _minimal(fragments: Iterable[str]) -> list[str]:
    """The fragments that contain none of the others (a text holding any holds one of these)."""
    kept: list[str] = []
    for fragment in sorted(fragments, key=len):
        if not any(shorter in fragment for shorter in kept):
            kept.append(fragment)
    return kept


def _encodings(piece: str) -> set[str]:
    return {
        piece,
        quote(piece, safe=""),
        quote(piece, safe="/:"),
        json.dumps(piece)[1:-1],
        piece.replace("/", "\\/"),
    }


def leaf_strings(values: Iterable[Any]) -> Iterator[str]:
    """Every non-empty string inside ``values``, however nested in mappings and lists."""
    for value in values:
        if isinstance(value, str):
            if value:
                yield value
        elif isinstance(value, Mapping):
            yield from leaf_strings(value.values())
        elif isinstance(value, list | tuple):
            yield from leaf_strings(value)


# -- the log record factory -------------------------------------------------------------

_PLAIN = (int, float, bool, type(None))
_traceback_formatter = logging.Formatter()


def redact_record(record: logging.LogRecord, registry: SecretRegistry = secret_registry) -> None:
    """Rewrite ``record`` in place so that no known secret is in what a handler prints."""
    if not registry.detect:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it, with the arguments
        message = f"{record.msg} {record.args}"
    if registry.contains_secret(message):
        _redact_message(record, registry)
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or _traceback_formatter.formatException(record.exc_info)
        if registry.contains_secret(text):
            # The exception object itself still holds the secret: only the text goes on.
            record.exc_info = None
            record.exc_text = registry.redact(text)
    elif record.exc_text and registry.contains_secret(record.exc_text):
        record.exc_text = registry.redact(record.exc_text)
    if record.stack_info and registry.contains_secret(record.stack_info):
        record.stack_info = registry.redact(record.stack_info)


def _redact_message(record: logging.LogRecord, registry: SecretRegistry) -> None:
    # Argument by argument first, so that formatters that read record.args (uvicorn's
    # access formatter unpacks them) keep working; the formatted text if that is not enough.
    record.msg = registry.redact(str(record.msg))
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redact_argument(a, registry) for a in args)
    elif isinstance(args, Mapping):
        record.args = {k: _redact_argument(v, registry) for k, v in args.items()}
    try:
        message = record.getMessage()
    except Exception:
        message = f"{record.msg} {record.args}"
    if registry.contains_secret(message):
        record.msg, record.args = registry.redact(message), None


def _redact_argument(value: Any, registry: SecretRegistry) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return registry.redact(value)
    text = str(value)
    return registry.redact(text) if registry.contains_secret(text) else value


class _RedactingFactory:
    """Wraps the record factory that was in place; passes records through once retired."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if self.active:
            try:
                redact_record(record)
            except Exception:  # never break the caller's logging call, never leak either
                record.msg, record.args = "(log record withheld: redacting it failed)", None
                record.exc_info = record.exc_text = record.stack_info = None
        return record


_install_lock = threading.Lock()
_installs = 0
_factory: _RedactingFactory | None = None


def install_log_redaction() -> None:
    """Redact known secrets from every log record from now on (counted; see remove)."""
    global _installs, _factory
    with _install_lock:
        _installs += 1
        if _installs == 1:
            _factory = _RedactingFactory(logging.getLogRecordFactory())
            logging.setLogRecordFactory(_factory)


def remove_log_redaction() -> None:
    """Undo one install; the last one restores the previous factory and forgets the secrets."""
    global _installs, _factory
    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs > 0 or _factory is None:
            return
        if logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_factory.previous)
        else:  # someone wrapped ours since: stay in their chain, doing nothing
            _factory.active = False
        _factory = None
        secret_registry.clear()


@contextmanager
def log_redaction() -> Iterator[None]:
    """Known secrets are redacted from log records while inside."""
    install_log_redaction()
    try:
        yield
    finally:
        remove_log_redaction()
