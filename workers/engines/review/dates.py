"""Dates as contracts write them ("February 17, 1999", "the 2nd day of April, 2020", "2/17/99"),
found with offsets and normalised to ISO 8601 by python-dateutil.

A regex finds the candidates (dateutil's fuzzy mode would happily read "Section 12" as a date);
dateutil only parses what the regex found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from dateutil import parser as dateparser

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
#: "20th", and "20t h" / "1s t" as PDF text extraction splits a superscript ordinal.
_DAY = r"(?:[0-3]?\d)(?:st|nd|rd|th|s\s?t|n\s?d|r\s?d|t\s?h)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
DATE = re.compile(
    rf"(?<![A-Za-z0-9])(?:{_MONTH}\s*{_DAY}\s*,?\s*{_YEAR}"   # February 17, 1999 / _Dec. 8, 2005
    rf"|{_DAY}\s+(?:day\s+of\s+)?{_MONTH}\s*,?\s*{_YEAR}"     # 17th day of February, 1999 / 1st day of JUNE , 2006
    rf"|{_MONTH}\s*,?\s+{_YEAR}"                             # February 1999 (day unknown)
    rf"|[01]?\d/[0-3]?\d/(?:{_YEAR}|\d\d)"                  # 2/17/1999
    rf"|[0-3]?\d\.[01]?\d\.{_YEAR}"                           # 1.4.2011: dotted dates are day first
    rf"|{_YEAR}-[01]\d-[0-3]\d)\b",                        # 1999-02-17
    re.IGNORECASE)


@dataclass(frozen=True)
class FoundDate:
    """A date in the text: ISO value and offsets of the words that say it."""

    iso: str
    start: int
    end: int


def _parse(raw: str) -> date | None:
    dotted = re.fullmatch(rf"([0-3]?\d)\.([01]?\d)\.({_YEAR})", raw)
    if dotted:  # the European form: day.month.year
        try:
            return date(int(dotted.group(3)), int(dotted.group(2)), int(dotted.group(1)))
        except ValueError:
            return None
    cleaned = re.sub(r"(\d)(s\s?t|n\s?d|r\s?d|t\s?h)\b", r"\1", raw, flags=re.IGNORECASE)
    cleaned = re.sub(r"\bday\s+of\b", "", cleaned, flags=re.IGNORECASE)
    if re.fullmatch(rf"\s*{_MONTH},?\s+{_YEAR}\s*", cleaned, re.IGNORECASE):
        return None  # a month without a day is not a date we can state in ISO form honestly
    try:
        return dateparser.parse(cleaned, dayfirst=False, fuzzy=False).date()
    except (ValueError, OverflowError):
        return None


def find_dates(text: str, start: int = 0, end: int | None = None) -> list[FoundDate]:
    """Every full date in ``text[start:end]``, in order."""
    out = []
    for m in DATE.finditer(text, start, len(text) if end is None else end):
        parsed = _parse(m.group(0))
        if parsed is not None:
            out.append(FoundDate(parsed.isoformat(), m.start(), m.end()))
    return out


def parse_date(text: str) -> str | None:
    """ISO form of the first date in a short string (also CUAD's mm/dd/yyyy answers), else None."""
    found = find_dates(text)
    return found[0].iso if found else None
