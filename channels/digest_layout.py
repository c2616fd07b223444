"""What every kind's digest shares: its headline, period line and "1/2" marks, and the
splitter that packs the events, in order, into as few parts as a service's limits allow.

A kind renders each event once, as an *entry* with a cost in every limit it must keep
(blocks, characters, embeds, bytes), and the part around the entries as a *shell* whose
cost is measured at its largest (every number as long as the event count, the "shortened"
note present). ``pack`` then fills parts greedily: every event lands in exactly one part,
in order, and a part never exceeds a limit. An entry that could not fit even alone is a
programming error of the kind (it shortens its entries first), never a silent cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tocsin.channels.base import Digest, Message
from tocsin.channels.rendering import fit_escaped, headline, human_time, single_line, text_length

Cost = tuple[int, ...]
"What one entry or shell takes of each of a service's limits, in the kind's own order."
Escape = Callable[[str], str]

SHORTENED_NOTE = "some details are shortened (…); Tocsin keeps the full text"
TITLE_LIMIT = 200
"An event's title in a digest, in UTF-16 units."
DETAIL_LIMIT = 500
"An event's detail in a digest: a digest is a summary, each event is in Tocsin in full."


@dataclass(frozen=True, slots=True)
class Entry:
    """One event as a kind renders it into a part, and what it costs there."""

    content: Any
    cost: Cost
    shortened: bool = False
    "Its detail or title was shortened to fit: the part says so."


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What a part's shell says: which part it is and which events it holds."""

    index: int
    "1-based."
    count: int
    start: int
    "0-based index of the part's first event in the digest."
    end: int
    "One past its last event."
    total: int
    shortened: bool

    @property
    def mark(self) -> str:
        """ "1/2" when the digest has several parts, else empty."""
        return f"{self.index}/{self.count}" if self.count > 1 else ""


def widest(total: int) -> PartInfo:
    """The shell's largest case, for measuring: every number as wide as ``total``."""
    wide = max(total, 2)
    return PartInfo(wide, wide, wide - 1, wide, wide, shortened=True)


def title_text(prefix: str, digest: Digest, part: PartInfo) -> str:
    """``"[Tocsin] Digest 1/2 · MEDIUM · 200 events"``."""
    name = f"Digest {part.mark}" if part.mark else "Digest"
    noun = "event" if part.total == 1 else "events"
    return f"{headline(prefix, name)} · {digest.priority} · {part.total} {noun}"


def period_text(digest: Digest, part: PartInfo) -> str:
    """The period and, when split, which events this part holds; the note when shortened."""
    text = f"{human_time(digest.period_start)} to {human_time(digest.period_end)}"
    if part.count > 1:
        text += f" · events {part.start + 1} to {part.end} of {part.total}"
    return f"{text} · {SHORTENED_NOTE}" if part.shortened else text


def event_about(message: Message) -> str:
    """``"MEDIUM · refresh_failed · 2026-06-12 09:15:00 UTC"``."""
    return f"{message.priority} · {message.event_type} · {human_time(message.occurred_at)}"


def event_title(
    message: Message, limit: int = TITLE_LIMIT, escape: Escape = str
) -> tuple[str, bool]:
    """The title on one line, escaped and shortened to ``limit``; and whether it was cut."""
    title = single_line(message.title) or "(no title)"
    return fit_escaped(title, limit, escape), text_length(escape(title)) > limit


def event_detail(
    message: Message, limit: int = DETAIL_LIMIT, escape: Escape = str
) -> tuple[str, bool]:
    """The detail, escaped and shortened to ``limit``; and whether it was cut."""
    detail = message.detail or ""
    return fit_escaped(detail, limit, escape), text_length(escape(detail)) > limit


def pack(costs: Sequence[Cost], shell: Cost, limits: Cost) -> list[range]:
    """Consecutive ranges of ``costs`` such that each range's sum plus ``shell`` keeps every
    limit; as few as greedy filling gives. ValueError when one entry can't fit alone."""
    room = tuple(limit - used for limit, used in zip(limits, shell, strict=True))
    parts: list[range] = []
    start = 0
    used = tuple(0 for _ in room)
    for index, cost in enumerate(costs):
        if any(c > r for c, r in zip(cost, room, strict=True)):
            raise ValueError(f"digest entry {index} costs {cost}, more than a part holds {room}")
        grown = tuple(u + c for u, c in zip(used, cost, strict=True))
        if any(g > r for g, r in zip(grown, room, strict=True)):
            parts.append(range(start, index))
            start, grown = index, cost
        used = grown
    if start < len(costs):
        parts.append(range(start, len(costs)))
    return parts


def lay_out(
    digest: Digest,
    entries: Sequence[Entry],
    shell_cost: Callable[[PartInfo], Cost],
    limits: Cost,
) -> list[tuple[PartInfo, list[Entry]]]:
    """The digest's parts: each one's ``PartInfo`` and its entries, in order."""
    ranges = pack([e.cost for e in entries], shell_cost(widest(len(entries))), limits)
    return [
        (
            PartInfo(
                index=number,
                count=len(ranges),
                start=span.start,
                end=span.stop,
                total=len(digest.messages),
                shortened=any(entries[i].shortened for i in span),
            ),
            [entries[i] for i in span],
        )
        for number, span in enumerate(ranges, start=1)
    ]
