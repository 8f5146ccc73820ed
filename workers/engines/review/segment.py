"""Cutting a contract into candidate clauses, each with exact character offsets into the text.

CUAD's gold clauses are sometimes a whole numbered section, often one sentence, and sometimes one
limb of a long sentence; so every paragraph, every sentence and every ``;``-separated limb of a long
sentence is a candidate, and the scorer decides which granularity fits a category. Offsets always
index the submitted string, so ``text[start:end]`` is exactly the highlighted clause.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

#: A paragraph ends at a blank line, or at a line break followed by a numbered heading.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_HEADING = re.compile(
    r"^\s*(?:(?:section|article|clause)\s+\d+[\w.]*|\d+(?:\.\d+)*\.?\s|\(?[a-z]\)|\(?[ivx]+\)|[A-Z]\.\s)",
    re.IGNORECASE)
#: Abbreviations after which a full stop does not end a sentence (legal and company usage).
_ABBREVIATIONS = frozenset((
    "inc", "ltd", "co", "corp", "no", "nos", "sec", "art", "arts", "para", "paras", "mr", "mrs", "ms", "dr", "st",
    "jr", "sr", "vs", "v", "etc", "e.g", "i.e", "u.s", "u.k", "s.a", "n.v", "b.v", "l.p", "l.l.c", "llc", "plc",
    "pte", "gmbh", "ag", "s.r.l", "fig", "approx", "dept", "est", "min", "max", "p", "pp", "cf", "al", "viz"))
_SENTENCE_END = re.compile(r"[.!?](?:[\"'”’)\]]*)\s+(?=[\"'“(\[]?[A-Z0-9])")
_LIMB_END = re.compile(r";\s+(?:and\s+|or\s+)?")

#: Limbs are only offered for sentences at least this many words long.
LIMB_MIN_SENTENCE_WORDS = 40
#: Paragraphs longer than this (characters) are not candidates themselves, only their sentences.
MAX_PARAGRAPH_CHARS = 4000
MIN_SEGMENT_CHARS = 8


@dataclass(frozen=True)
class Segment:
    """One candidate clause: ``text[start:end]``; ``kind`` is paragraph, sentence or limb."""

    start: int
    end: int
    kind: str


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """Paragraph spans: separated by blank lines, or by line breaks that start a numbered heading."""
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        yield from _split_headings(text, pos, m.start())
        pos = m.end()
    yield from _split_headings(text, pos, len(text))


def _split_headings(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    cut = start
    line_start = text.find("\n", start, end)
    while line_start != -1:
        nxt = line_start + 1
        line_end = text.find("\n", nxt, end)
        line = text[nxt : line_end if line_end != -1 else end]
        if _HEADING.match(line):
            s, e = _trimmed(text, cut, line_start)
            if e > s:
                yield s, e
            cut = nxt
        line_start = line_end
    s, e = _trimmed(text, cut, end)
    if e > s:
        yield s, e


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` closes an abbreviation or an enumerator like ``1.`` / ``(a).``"""
    i = dot
    while i > 0 and not text[i - 1].isspace() and text[i - 1] not in "(\"'“":
        i -= 1
    word = text[i:dot].lower().rstrip(".")
    if not word:
        return False
    if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return True
    return bool(re.fullmatch(r"\d+(?:\.\d+)*|\(?[a-z]{1,3}\)|[ivx]+", word))


def sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence spans inside ``text[start:end]``."""
    cut = start
    for m in _SENTENCE_END.finditer(text, start, end):
        if text[m.start()] == "." and _is_abbreviation(text, m.start()):
            continue
        s, e = _trimmed(text, cut, m.end())
        if e - s >= MIN_SEGMENT_CHARS:
            yield s, e
            cut = m.end()
    s, e = _trimmed(text, cut, end)
    if e > s:
        yield s, e


def limbs(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``;``-separated parts of one sentence (each keeps its semicolon)."""
    cut = start
    for m in _LIMB_END.finditer(text, start, end):
        s, e = _trimmed(text, cut, m.start() + 1)
        if e - s >= MIN_SEGMENT_CHARS:
            yield s, e
        cut = m.end()
    s, e = _trimmed(text, cut, end)
    if e - s >= MIN_SEGMENT_CHARS and cut > start:
        yield s, e


def segment(text: str) -> list[Segment]:
    """Every candidate clause of a contract, in text order, without duplicate spans."""
    seen: set[tuple[int, int]] = set()
    out: list[Segment] = []

    def add(s: int, e: int, kind: str) -> None:
        if e - s >= MIN_SEGMENT_CHARS and (s, e) not in seen:
            seen.add((s, e))
            out.append(Segment(s, e, kind))

    for p_start, p_end in paragraphs(text):
        sents = list(sentences(text, p_start, p_end))
        if len(sents) > 1 and p_end - p_start <= MAX_PARAGRAPH_CHARS:
            add(p_start, p_end, "paragraph")
        for s_start, s_end in sents:
            add(s_start, s_end, "sentence")
            if len(text[s_start:s_end].split()) >= LIMB_MIN_SENTENCE_WORDS:
                parts = list(limbs(text, s_start, s_end))
                if len(parts) > 1:
                    for l_start, l_end in parts:
                        add(l_start, l_end, "limb")
    return out
