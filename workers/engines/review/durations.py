"""Spelled-out legal durations ("ninety (90) days", "one year", "24 months") as ISO 8601 (``P90D``).

Contracts write numbers twice ("thirty (30) days"); the figure in brackets wins because it is the
one the drafters check. Numbers in words cover what contracts use for terms and notice periods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19, "a": 1, "an": 1, "single": 1}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90, "hundred": 100}
_WORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS], key=len, reverse=True)) + r")"
_NUMBER = (rf"(?:(?P<words>{_WORD}(?:[\s-]+{_WORD})*(?:\s+hundred(?:\s+(?:and\s+)?{_WORD}(?:[\s-]+{_WORD})?)?)?)"
           rf"\s*(?:\(\s*(?P<paren>\d+)\s*\))?|(?P<digits>\d+))")
_UNIT = r"(?P<unit>calendar\s+days?|business\s+days?|days?|weeks?|months?|years?)"
DURATION = re.compile(
    rf"\b{_NUMBER}[\s-]*(?:\(\s*\d+\s*\)\s*)?(?:successive\s+|additional\s+|consecutive\s+)?{_UNIT}\b", re.IGNORECASE)
_ISO_UNIT = {"day": "D", "week": "W", "month": "M", "year": "Y"}


@dataclass(frozen=True)
class Duration:
    """A duration found in text: ISO 8601 value and where it was."""

    iso: str
    start: int
    end: int


def words_to_number(words: str) -> int | None:
    """'ninety' -> 90, 'twenty-four' -> 24, 'one hundred and eighty' -> 180."""
    total, current = 0, 0
    tokens = [t for t in re.split(r"[\s-]+", words.lower().strip()) if t and t != "and"]
    if len(tokens) > 1:  # "a five-year term": the article is not a number
        tokens = [t for t in tokens if t not in ("a", "an", "single")] or tokens
    for token in tokens:
        if token == "hundred":
            current = max(current, 1) * 100
        elif token in _TENS:
            current += _TENS[token]
        elif token in _UNITS:
            current += _UNITS[token]
        else:
            return None
    total += current
    return total or None


def _value(m: re.Match[str]) -> int | None:
    if m.group("paren"):
        return int(m.group("paren"))
    if m.group("digits"):
        return int(m.group("digits"))
    return words_to_number(m.group("words") or "")


def find_durations(text: str, start: int = 0, end: int | None = None) -> list[Duration]:
    """Every duration in ``text[start:end]`` with its offsets."""
    found = []
    for m in DURATION.finditer(text, start, len(text) if end is None else end):
        n = _value(m)
        if n is None or n <= 0:
            continue
        unit = m.group("unit").lower().split()[-1].rstrip("s")
        found.append(Duration(f"P{n}{_ISO_UNIT[unit]}", m.start(), m.end()))
    return found


def parse_duration(text: str) -> str | None:
    """The first duration in a short string ('successive 1 year' -> 'P1Y'), else None."""
    found = find_durations(text)
    return found[0].iso if found else None
