"""Key fields by rule: parties, dates, governing law, renewal term and notice period.

These are short, formulaic phrases ("governed by the laws of the State of New York", "by and
between A and B", "renew for successive one (1) year terms unless ... ninety (90) days prior"), where a
pattern is both more exact and more checkable than an embedding. Each rule looks first in the clause
the scorer ranked best for that category, then in the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from dateutil.relativedelta import relativedelta

from workers.engines.review.dates import FoundDate, find_dates
from workers.engines.review.durations import find_durations

#: How far into a contract the preamble (title, date, parties) is looked for.
PREAMBLE_CHARS = 4000

_BETWEEN = re.compile(r"\b(?:by\s+and\s+between|between|by\s+and\s+among|among|made\s+by)\s*:?\s+", re.IGNORECASE)
#: The "and" that introduces the next party: "..., and B", "...) AND B", ""Customer" And B", "; and (2) B".
_NEXT_PARTY = re.compile(r"(?<!England)[,;]?\s+(?:and|AND|And)\s*:?\s+(?=(?:\(\w{1,3}\)\s*)?(?:the\s+)?[A-Z\"“])")
_SUFFIX = (r"(?i:Inc|Incorporated|Ltd|Limited|LLC|L\.L\.C|Corp|Corporation|Company|Co|GmbH|AG|S\.A|N\.V|B\.V|Pte|"
           r"PLC|plc|LP|L\.P|LLP|S\.R\.L|S\.p\.A|Pty|SA|SE)\.?")
#: A company name: capitalised words (and "of", "&", commas) up to a legal-form suffix.
_COMPANY = re.compile(rf"(?<![\w.])(?:(?:[A-Z0-9][\w.&'’/-]*|of|and|&|de),?[ \t]+){{1,8}}?{_SUFFIX}(?![A-Za-z])")
_PARTY_SPLIT = re.compile(r"(?:\)|\bLimited|\b[A-Z][A-Za-z.]*)\s*[,;]?\s*(?:and|AND|&)\s+(?=(?:the\s+)?[A-Z\"“])"
                          r"|\)\s*[,;]\s*(?=[A-Z\"“])|;\s+and\s+|,\s+and\s+(?=[A-Z])", re.MULTILINE)
_NAME_END = re.compile(r",?\s+\(|\s+\d{2,}|\s+(?:This|The)\s+[A-Z]|,\s+(?:an?|the)\s|"
                       r",\s+(?:located|having|with|whose|organi[sz]ed|incorporated|existing|duly|acting|registered|"
                       r"hereinafter|residing|herein)\b|\s+\(|,\s+(?:its|on)\s|"
                       r"\s+(?:organi[sz]ed|incorporated|located|having)\b|$")
_ALIAS = re.compile(r"[\"“]([^\"”]{1,60})[\"”]")
_PREAMBLE_END = re.compile(r"\.\s*\n|\bWHEREAS\b|\bRECITALS?\b|\bW\s*I\s*T\s*N\s*E\s*S\s*S\s*E\s*T\s*H\b|\n\s*\n\s*\n")

_LAWS_OF = re.compile(
    r"\blaws?\b(?:\s+and\s+(?:decisions|regulations|statutes))?\s+(?:of|in\s+force\s+in)\s+(?:the\s+)?"
    r"(?:(?:State|Commonwealth|Province|Territory)\s+of\s+)?", re.IGNORECASE)
_GOVERN_CUE = re.compile(r"govern|constru|interpret|accordance|subject\s+to|pursuant|under", re.IGNORECASE)
_PLACE_WORD = re.compile(r"[A-Z][A-Za-z'’]*|of|and")
_PLACE_STOP = frozenset({"and", "of"})
#: Words that follow a place, never part of it: in title-cased text ("The Laws Of Pennsylvania Without
#: Giving Effect To Any Choice Or Conflict Of Law Provision") capitals no longer mark where it ends.
_AFTER_PLACE = frozenset({"without", "excluding", "except", "exclusive", "regardless", "notwithstanding", "giving",
                          "including", "applicable", "as", "which", "that", "in", "to", "for", "other", "than",
                          "irrespective", "but", "save", "with", "by", "shall", "will", "and/or", "or"})
#: The longest place name read ("Bolivarian Republic of Venezuela", "Special Administrative Region of Hong Kong").
MAX_PLACE_WORDS = 7
_NOT_PLACES = frozenset({"this", "such", "any", "each", "that", "the", "its", "said", "territory", "country",
                         "jurisdiction", "state"})

_RENEW = re.compile(r"\b(?:renew|renewal|extend|extension|successive|automatically\s+continue)", re.IGNORECASE)
_AUTO_RENEW = re.compile(r"\bautomatic(?:ally)?\b[^.]{0,120}\b(?:renew|extend|continue)|\b(?:renew|extend)\w*\b"
                         r"[^.]{0,60}\bautomatic(?:ally)?\b|\bevergreen\b", re.IGNORECASE)
_NOTICE = re.compile(r"\bnotice\b|\bnotif", re.IGNORECASE)
_PERPETUAL = re.compile(r"\b(?:perpetu\w*|indefinite(?:ly)?|until\s+terminated)\b", re.IGNORECASE)
_EXPIRY_CUE = re.compile(r"\b(?:expir\w*|terminat\w*|until|through|continue\w*\s+(?:in\s+(?:full\s+)?force\s+)?"
                         r"(?:and\s+effect\s+)?(?:until|through)|end(?:s|ing)?(?:\s+on)?)\b", re.IGNORECASE)
_EFFECTIVE_CUE = re.compile(r"effective\s+(?:as\s+of|on|from)?|[\"“]Effective\s+Date[\"”]", re.IGNORECASE)
#: An EDGAR exhibit's page footer: "Source: ECO SCIENCE SOLUTIONS, INC., 8-K, 11/17/2017".
_FILING_FOOTER = re.compile(r"Source:[^\n]{0,160}?,\s*[\w/-]{2,12},\s*\d{1,2}/\d{1,2}/\d{4}")
#: A defined term right after a date: ' (the "Effective Date")', ', (hereinafter the "AECI")'.
_DEFINED_AFTER = re.compile(
    r"\s*,?\s*\((?:hereinafter\s+)?(?:referred\s+to\s+as\s+)?(?:the\s+)?[\"“]([^\"”]{1,40})[\"”]\)", re.IGNORECASE)
_EFFECTIVE_TERM = re.compile(r"(?:Agreement\s+)?Effective\s+Date|Effective\s+Time|Commencement\s+Date", re.IGNORECASE)
#: A quoted effective term ("Effective Date" with either kind of quotes), and how far before it the date
#: that it defines is looked for: the date and a "(hereinafter referred to as the " between them.
_QUOTED_EFFECTIVE_TERM = re.compile(r"[\"“](?:Agreement\s+)?Effective\s+Date|[\"“]Effective\s+Time|"
                                    r"[\"“]Commencement\s+Date", re.IGNORECASE)
DEFINED_DATE_REACH = 200
#: Defined terms that name the contract's own date, not another agreement's or event's.
_OWN_DATE_TERM = re.compile(r"(?:Agreement\s+|Contract\s+)?(?:Effective|Execution|Signing|Commencement|Agreement)"
                            r"(?:\s+Date)?|Date|Effective\s+Time", re.IGNORECASE)
_AGREEMENT_CUE = re.compile(r"\b(?:dated|made|entered\s+into|executed|as\s+of|effective|this)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """Text the fields were read from (offsets into the contract)."""

    start: int
    end: int


def _clean_name(raw: str) -> str:
    name = re.sub(r"\s+", " ", raw).strip(" ,;:.\"“”'")
    name = re.sub(r"^(?:the\s+)?(?:undersigned\s+)?", "", name, flags=re.IGNORECASE) if name.lower().startswith(
        "the undersigned") else name
    if re.search(r"\b(?:Inc|Ltd|Co|Corp|L\.?L\.?C|S\.?A|N\.?V|B\.?V|L\.?P|S\.R\.L|Pte|AG|GmbH)$", name) and \
            raw.rstrip().endswith("."):
        name += "."
    return name


_NAME_WORD_OK = frozenset(["of", "and", "&", "de", "du", "la", "le", "des", "der", "von", "the", "dba", "d/b/a", "for"])


def _plausible_name(name: str) -> bool:
    """A party name is a few capitalised words, not a clause of the preamble or an address."""
    words = name.split()
    if not words or len(words) > 10 or not re.search(r"[A-Za-z]{2}", name):
        return False
    return all(w[0].isupper() or w[0].isdigit() or w.lower() in _NAME_WORD_OK or not w[0].isalpha() for w in words)


#: The most a preamble ("between A ... and B ...") runs, in characters.
MAX_PREAMBLE_SPAN = 1500


def preamble_span(text: str) -> tuple[int, int] | None:
    """Where the parties are introduced: from the line that says "between" to the end of that
    sentence (or the recitals), so "BETWEEN:" on a line of its own still takes in the names below."""
    head = text[:PREAMBLE_CHARS]
    m = _BETWEEN.search(head)
    if not m:
        return None
    start = head.rfind("\n", 0, m.start()) + 1
    while start < m.start() and head[start].isspace():
        start += 1
    end_match = _PREAMBLE_END.search(head, m.end())
    end = end_match.start() + (1 if head[end_match.start()] == "." else 0) if end_match else len(head)
    end = min(end, start + MAX_PREAMBLE_SPAN)
    while end > start and head[end - 1].isspace():
        end -= 1
    return start, end


def parties(text: str) -> list[dict[str, str]]:
    """Parties named in the preamble ("between A, a Delaware corporation ("A"), and B"), with the
    defined term each is given when there is one.

    Every "between" near the top is tried, and the first that names two parties or more wins: a
    cover title ("JOINT VENTURE AGREEMENT BETWEEN TATE & LYLE ... LTD." then "AND IGENE ..." on the
    next line) or a table of contents often comes before the preamble that names them all. With no
    such preamble, what the first "between" names (a later one that names a single "party" is more
    often a clause heading than a party).
    """
    head = text[:PREAMBLE_CHARS * 2]
    first: list[dict[str, str]] | None = None
    for m in _BETWEEN.finditer(head):
        found = _parties_after(head, m)
        if len(found) >= 2:
            return found
        if first is None and m.start() < PREAMBLE_CHARS:
            first = found
    listed = _listed_parties(head)
    return listed if len(listed) >= 2 > len(first or []) else first or []


#: A company followed by the term it is given: "Valence Technology, Inc., (hereinafter referred to as
#: Party B)" — contracts that list their parties one per article instead of "between A and B".
_HEREINAFTER = re.compile(r"[,\s]*\((?:hereinafter|hereafter)\s+(?:referred\s+to\s+as\s+|called\s+)?(?:the\s+)?"
                          r"[\"“]?([^\"”)]{1,40}?)[\"”]?\)")


def _listed_parties(head: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for term in _HEREINAFTER.finditer(head):
        before = head[max(0, term.start() - 150) : term.start()]
        raw = re.split(r"\n|(?<=[a-z0-9)])[.;:]\s+|\b\d{1,2}\.\s+", before)[-1]
        name = _clean_name(raw)
        if name and _plausible_name(name) and all(p["name"] != name for p in out):
            out.append({"name": name, "defined_as": term.group(1).strip()})
    return out[:6]


def _parties_after(head: str, m: re.Match[str]) -> list[dict[str, str]]:
    """The parties in the sentence that ``m`` (a "between") starts."""
    end = _PREAMBLE_END.search(head, m.end())
    body = head[m.end() : end.start() if end else len(head)]
    out: list[dict[str, str]] = []
    pos = 0
    pieces = []
    for sep in _NEXT_PARTY.finditer(body):
        pieces.append(body[pos : sep.start()])
        pos = sep.end()
    pieces.append(body[pos:])
    for piece in pieces:
        piece = re.sub(r"^\s*\(\w{1,3}\)\s*", "", piece).strip()  # "(1) BICYCLETX LIMITED ..."
        if not piece or not (piece[0].isupper() or piece[0].isdigit() or piece[0] in "\"“"):
            continue
        company = _COMPANY.match(piece)
        if company and len(company.group(0)) <= 120:
            name, rest = _clean_name(company.group(0)), piece[company.end() :]
        else:
            name_end = _NAME_END.search(piece)
            name = _clean_name(piece[: name_end.start()] if name_end else piece)
            rest = piece[name_end.start() if name_end else 0 :]
        if not _plausible_name(name):
            continue
        alias = _ALIAS.search(rest)
        entry = {"name": name}
        if alias and alias.group(1).strip() != name:
            entry["defined_as"] = alias.group(1).strip()
        if all(p["name"] != name for p in out):
            out.append(entry)
    return out[:6]


_EXECUTED = re.compile(r"\b(?:executed|signed|entered\s+into)\b[^.]{0,60}?\b(?:on|as\s+of|dated)\b", re.IGNORECASE)


def agreement_date(text: str) -> FoundDate | None:
    """The date in the preamble ("made and entered into as of February 17, 1999"), else the date
    the closing says the contract was executed on, else the first full date near the top."""
    dates = find_dates(text, 0, min(len(text), PREAMBLE_CHARS))
    for d in dates:
        if _AGREEMENT_CUE.search(text[max(0, d.start - 80) : d.start]):
            return d
    for m in _EXECUTED.finditer(text):
        after = find_dates(text, m.end(), min(len(text), m.end() + 60))
        if after:
            return after[0]
    return dates[0] if dates else None


def _footer_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _FILING_FOOTER.finditer(text)]


def _usable(d: FoundDate, text: str, footers: Sequence[tuple[int, int]]) -> bool:
    """Not a filing footer's date, and not the date of another defined thing ("executed by IBM on
    August 3, 2001 (the "AECI")")."""
    if any(start <= d.start < end for start, end in footers):
        return False
    term = _DEFINED_AFTER.match(text, d.end)
    return term is None or _OWN_DATE_TERM.fullmatch(term.group(1)) is not None


def effective_date(text: str, agreement: FoundDate | None) -> FoundDate | None:
    """The date the contract defines as its "Effective Date" ("made this 20th day of November, 2018
    (the "Effective Date")"): that defined term wins over any other mention. Else a date tied to
    "effective as of", "Effective Date" by proximity, leaving out filing footers ("Source: ACME
    CORP., 8-K, 11/30/2018", repeated on every page of an EDGAR exhibit) and dates that another
    defined term follows. A contract that defines none is effective on its agreement date."""
    footers = _footer_spans(text)
    # dates are parsed only just before each quoted effective term, not all over a long contract
    for quoted in _QUOTED_EFFECTIVE_TERM.finditer(text):
        for d in find_dates(text, max(0, quoted.start() - DEFINED_DATE_REACH), quoted.start()):
            term = _DEFINED_AFTER.match(text, d.end)
            if term and _EFFECTIVE_TERM.fullmatch(term.group(1)) and _usable(d, text, footers):
                return d
    for m in _EFFECTIVE_CUE.finditer(text):
        nearby = [d for d in find_dates(text, max(0, m.start() - 120), min(len(text), m.end() + 120))
                  if _usable(d, text, footers)]
        if nearby:
            return min(nearby, key=lambda d: min(abs(d.start - m.end()), abs(m.start() - d.end)))
    return agreement if agreement is None or _usable(agreement, text, footers) else None


def expiration_date(clause: str | None, effective: str | None) -> str | None:
    """From the term clause: an explicit end date, the effective date plus the initial term, or
    ``perpetual``."""
    if not clause:
        return None
    for d in find_dates(clause):
        if _EXPIRY_CUE.search(clause[max(0, d.start - 80) : d.start]):
            return d.iso
    if effective:
        for dur in find_durations(clause):
            if _RENEW.search(clause[max(0, dur.start - 60) : dur.start]):
                continue
            start = date.fromisoformat(effective)
            n, unit = int(dur.iso[1:-1]), dur.iso[-1]
            delta = {"Y": relativedelta(years=n), "M": relativedelta(months=n), "W": relativedelta(weeks=n),
                     "D": relativedelta(days=n)}[unit]
            return (start + delta).isoformat()  # the anniversary, as CUAD's answers count it
    if _PERPETUAL.search(clause):
        return "perpetual"
    return None


def _place_after(text: str, pos: int) -> str | None:
    """Capitalised words from ``pos`` ("New York", "People's Republic of China"), to the first other word."""
    words: list[str] = []
    for m in re.finditer(r"\S+", text[pos : pos + 80]):
        word = m.group(0)
        bare = word.rstrip(".,;:)")
        if not _PLACE_WORD.fullmatch(bare) or (bare in _PLACE_STOP and not words) or \
                (words and bare.lower() in _AFTER_PLACE) or len(words) >= MAX_PLACE_WORDS:
            break
        words.append(bare)
        if bare != word:
            break
    while words and words[-1] in _PLACE_STOP:
        words.pop()
    if words and "and" in words:
        words = words[: words.index("and")]
    place = " ".join(words)
    if not place or place.lower() in _NOT_PLACES:
        return None
    return place.title() if place.isupper() else place


def governing_law(texts: Sequence[str]) -> str | None:
    """The jurisdiction whose law governs, as named ("New York", "Israel"), from a sentence that
    says the contract is governed by, construed under or subject to the laws of a place."""
    for text in texts:
        for m in _LAWS_OF.finditer(text):
            if not _GOVERN_CUE.search(text[max(0, m.start() - 250) : m.start()]):
                continue
            place = _place_after(text, m.end())
            if place:
                return place
    return None


_PERIODIC = ((re.compile(r"\bannual(?:ly)?\b|\byear[- ]to[- ]year\b|\beach\s+anniversary\b", re.IGNORECASE), "P1Y"),
             (re.compile(r"\bmonth[- ]to[- ]month\b|\bmonthly\b", re.IGNORECASE), "P1M"))


def renewal_term(clause: str | None) -> str | None:
    """ISO duration of one renewal ("successive one (1) year terms" -> P1Y, "annual renewals" -> P1Y)."""
    if not clause or not _RENEW.search(clause):
        return None
    for cue in _RENEW.finditer(clause):
        near = clause[max(0, cue.start() - 40) : cue.end() + 40]
        for pattern, iso in _PERIODIC:
            if pattern.search(near):
                return iso
    for dur in find_durations(clause):
        window = clause[max(0, dur.start - 80) : dur.end + 40]
        if _RENEW.search(window) and not _NOTICE.search(clause[dur.end : dur.end + 25]) and \
                not re.search(r"\b(?:prior|before|notice)\b", clause[dur.end : dur.end + 30], re.IGNORECASE):
            return dur.iso
    return None


_NOTICE_AFTER = re.compile(r"^\W{0,3}(?:\w+\s+){0,3}?(?:prior|before|in\s+advance|"
                           r"(?:advance\s+|prior\s+)?(?:written\s+)?notice)\b", re.IGNORECASE)
_NOTICE_BEFORE = re.compile(r"\b(?:notice|notif\w*)\b[^.;]{0,40}$", re.IGNORECASE)


def notice_period(clause: str | None) -> str | None:
    """ISO duration of the notice needed to stop a renewal ("ninety (90) days prior" -> P90D)."""
    if not clause or not _NOTICE.search(clause):
        return None
    durations = find_durations(clause)
    for dur in durations:  # "ninety (90) days prior", "sixty (60) days notice"
        if _NOTICE_AFTER.search(clause[dur.end : dur.end + 40]):
            return dur.iso
    for dur in durations:  # "notice of at least thirty (30) days"
        if _NOTICE_BEFORE.search(clause[max(0, dur.start - 60) : dur.start]) and \
                not re.match(r"\s*(?:terms?|renewal|period\s+of\s+renewal)\b", clause[dur.end : dur.end + 20]):
            return dur.iso
    return None


def is_auto_renewal(clause: str | None) -> bool:
    return bool(clause and _AUTO_RENEW.search(clause))


def extract_fields(text: str, best: dict[str, str | None]) -> dict[str, Any]:
    """All key fields. ``best`` maps a CUAD category to the text of its best-scoring clause."""
    agreement = agreement_date(text)
    effective_found = effective_date(text, agreement)
    effective = effective_found.iso if effective_found else None
    term_clause = best.get("Expiration Date")
    renewal_clause = best.get("Renewal Term")
    notice_clause = best.get("Notice Period to Terminate Renewal") or renewal_clause
    return {
        "parties": parties(text),
        "agreement_date": agreement.iso if agreement else None,
        "effective_date": effective,
        "expiration_date": expiration_date(term_clause, effective),
        "governing_law": governing_law([t for t in (best.get("Governing Law"), text) if t]),
        "renewal_term": renewal_term(renewal_clause),
        "notice_period_to_terminate_renewal": notice_period(notice_clause),
    }
