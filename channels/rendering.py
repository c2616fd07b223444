"""Text shared by the channel kinds: the prefix, limits, metadata and safe error text.

Lengths are measured in UTF-16 code units, the way Discord, Telegram and Slack
count them, so that a title full of emoji still fits.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tocsin.storage.redaction import give_aways, leaf_strings

if TYPE_CHECKING:  # channels/base.py imports this module
    from tocsin.channels.base import Message

ELLIPSIS = "…"
ERROR_LIMIT = 300
SNIPPET_LIMIT = 200
REDACTED = "[redacted]"


def text_length(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _char_length(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def fit_escaped(text: str, limit: int, escape: Callable[[str], str] = lambda s: s) -> str:
    """``escape(text)``, cut so that it fits ``limit`` and ends in "…" when cut.

    Characters are escaped one at a time, so a cut never splits an entity
    such as ``&amp;``.
    """
    escaped = escape(text)
    if text_length(escaped) <= limit:
        return escaped
    budget = limit - text_length(ELLIPSIS)
    parts: list[str] = []
    used = 0
    for char in text:
        piece = escape(char)
        size = sum(_char_length(c) for c in piece)
        if used + size > budget:
            break
        parts.append(piece)
        used += size
    return "".join(parts).rstrip() + ELLIPSIS if budget > 0 else ""


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` (UTF-16 units), ending in "…" when cut."""
    return fit_escaped(text, limit)


def single_line(text: str) -> str:
    """``text`` with line breaks and other control characters turned into single spaces."""
    cleaned = "".join(
        " " if unicodedata.category(char) in {"Cc", "Zl", "Zp"} else char for char in text
    )
    return re.sub(r"\s{2,}", " ", cleaned).strip()


def headline(prefix: str, title: str) -> str:
    """``"[Tocsin] <title>"``; just the title when the prefix is empty."""
    return f"{prefix} {title}" if prefix else title


def fallback_text(prefix: str, message: Message) -> str:
    """``"[Tocsin] <title>: <detail>"``, or the headline alone without a detail."""
    text = headline(prefix, message.title)
    return f"{text}: {message.detail}" if message.detail else text


def format_value(value: Any) -> str:
    """A metadata value as a reader expects it: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)


def metadata_items(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(key), format_value(value)) for key, value in metadata.items()]


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def human_time(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def items_that_fit(
    sizes: list[int],
    budget: int,
    summary_size: Callable[[int], int],
    max_count: int | None = None,
) -> int:
    """How many leading items fit in ``budget`` together with a summary of the dropped rest."""
    most = len(sizes) if max_count is None else min(len(sizes), max_count)
    for count in range(most, 0, -1):
        dropped = len(sizes) - count
        used = sum(sizes[:count]) + (summary_size(dropped) if dropped else 0)
        if used <= budget:
            return count
    return 0


# Error text: short, and never carrying a secret of the destination.


def secret_fragments(secrets: Mapping[str, Any]) -> list[str]:
    """Every string that would give a secret away, longest first: the values, the secret
    parts of URLs, in their usual encodings (the same pieces the log redaction uses)."""
    fragments = {
        f for value in leaf_strings(secrets.values()) for f in give_aways(value, shortest=4)
    }
    return sorted(fragments, key=len, reverse=True)


def scrub(text: str, fragments: Iterable[str]) -> str:
    """``text`` with every secret fragment replaced by "[redacted]"."""
    for fragment in fragments:
        if fragment in text:
            text = text.replace(fragment, REDACTED)
    return text


def response_snippet(body: bytes, fragments: Iterable[str], limit: int = SNIPPET_LIMIT) -> str:
    """The start of a receiver's answer, on one line, scrubbed, at most ``limit`` characters."""
    text = scrub(body[: 16 * 1024].decode("utf-8", errors="replace"), fragments)
    return truncate(single_line(text), limit)


def short_error(text: str, fragments: Iterable[str] = ()) -> str:
    """An error for SendResult: scrubbed first, then cut to 300 characters."""
    return truncate(single_line(scrub(text, fragments)), ERROR_LIMIT)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
