"""Verbatim quotes found back in the source text, and JSON answers cut short by the new-token limit.

An LLM's review names clauses by quoting them. A quote is only reported with the offsets of where
it stands in the document (``text == document[start:end]``, the shape of every review result); a
quote that is not in the document (a paraphrase, a fabrication) is dropped and counted, never
reported as a clause. Matching is exact, then blind to runs of whitespace (a model rewrites line
breaks and double spaces as single spaces; the offsets are still those of the original text), and
nothing else: no case folding, no fuzzy matching, so what is reported is what the contract says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: A quote with fewer non-space characters than this is too short to say where it comes from.
MIN_QUOTE_CHARS = 8
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Span:
    """Where a quote stands in the document: ``document[start:end]``."""

    start: int
    end: int


class Located:
    """A document prepared for quote look-ups: its text with whitespace runs collapsed to one space,
    and for every character of that the offset it came from."""

    def __init__(self, text: str) -> None:
        self.text = text
        chars: list[str] = []
        offsets: list[int] = []
        for m in re.finditer(r"\s+|\S+", text):
            if m.group().isspace():
                chars.append(" ")
                offsets.append(m.start())
            else:
                chars.extend(m.group())
                offsets.extend(range(m.start(), m.end()))
        self.flat = "".join(chars)
        self.offsets = offsets

    def flat_offset(self, start: int) -> int:
        """The index in the collapsed text of the first character at or after ``start``."""
        lo, hi = 0, len(self.offsets)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.offsets[mid] < start:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, quote: str, near: int = 0) -> Span | None:
        """Where ``quote`` stands, preferring the first occurrence at or after offset ``near`` (the
        start of the window it was quoted from), else the first in the document; None if nowhere."""
        wanted = quote.strip()
        if len(_SPACE.sub("", wanted)) < MIN_QUOTE_CHARS:
            return None
        for begin in (near, 0):
            at = self.text.find(wanted, begin)
            if at >= 0:
                return Span(at, at + len(wanted))
        flat = _SPACE.sub(" ", wanted)
        for begin in (self.flat_offset(near), 0):
            at = self.flat.find(flat, begin)
            if at >= 0:
                return Span(self.offsets[at], self.offsets[at + len(flat) - 1] + 1)
        return None


def locate_quotes(text: str, quotes: list[str], near: int = 0) -> tuple[list[Span | None], int]:
    """Each quote's span in ``text`` (None where it is not there), and how many were not there."""
    located = Located(text)
    spans = [located.find(q, near) for q in quotes]
    return spans, sum(1 for s in spans if s is None)


def window_starts(text: str, windows: list[str]) -> list[int]:
    """The offset in ``text`` where each consecutive window begins (windows are the document's
    sentences re-joined by single spaces, so they are looked up blind to whitespace)."""
    located = Located(text)
    starts: list[int] = []
    at = 0
    for window in windows:
        head = _SPACE.sub(" ", window.strip())[:64]
        found = located.flat.find(head, at) if head else -1
        if found < 0:
            starts.append(located.offsets[at] if at < len(located.offsets) else len(text))
            continue
        starts.append(located.offsets[found])
        at = found + 1
    return starts


def parse_answer(answer: str) -> tuple[Any, bool]:
    """The JSON value of a constrained answer, and whether it was complete.

    Constrained decoding makes every answer a valid JSON prefix; one that reached the new-token limit
    is cut. Its complete members and array items are kept: the longest prefix that parses once its
    open brackets are closed (an incomplete last item is dropped). ``(None, False)`` if nothing parses."""
    try:
        return json.loads(answer), True
    except ValueError:
        pass
    stacks: list[str] = []  # the open brackets before each character
    opened: list[str] = []
    in_string = escaped = False
    for ch in answer:
        stacks.append("".join(opened))
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            opened.append(ch)
        elif ch in "]}" and opened:
            opened.pop()
    for cut in range(len(answer), 0, -1):
        if answer[cut - 1] not in '"]}el0123456789':  # a value ends with one of these (true, false, null)
            continue
        stack = stacks[cut] if cut < len(stacks) else "".join(opened)
        closers = "".join("]" if b == "[" else "}" for b in reversed(stack))
        try:
            return json.loads(answer[:cut] + closers), False
        except ValueError:
            continue
    return None, False
