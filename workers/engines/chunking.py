"""Splitting long text at natural boundaries into pieces a model can take.

Seq2seq models have a fixed input window (1024 tokens for BART, 512 for opus-mt). Cutting a text at
arbitrary token offsets breaks sentences in half and hurts both summaries and translations, so text
is cut at paragraph breaks, then sentence boundaries (sentencex, rule-based, ~300 languages), and
only a single over-long sentence is cut at word boundaries. Separators are kept, so a text can be
put back together with its original paragraph layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sentencex import segment

from workers.engines.windows import cut_before

#: A blank line (possibly with spaces) separates paragraphs.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_NON_SPACE = re.compile(r"\S")

#: Counts the tokens of each text (without special tokens), in one call for speed.
TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Paragraph:
    """A paragraph's text and the separator that followed it in the original."""

    text: str
    separator: str


def paragraph_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, separator)`` of each paragraph, lazily and without copying the text (leading
    whitespace is skipped, the last paragraph's separator is empty)."""
    first = _NON_SPACE.search(text)
    if first is None:
        return
    pos = first.start()
    for m in _PARAGRAPH_BREAK.finditer(text, pos):
        yield pos, m.start(), m.group()
        pos = m.end()
    if pos < len(text):
        yield pos, len(text), ""


def split_paragraphs(text: str) -> list[Paragraph]:
    """Paragraphs with the exact separators between them (``"".join`` of both gives the text back,
    minus leading whitespace)."""
    return [Paragraph(text[start:end], sep) for start, end, sep in paragraph_spans(text)]


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of ``text``, stripped, with single line breaks inside a sentence kept as spaces.

    ``language`` is an ISO 639-1 code; sentencex falls back to related languages' rules.
    """
    sentences = []
    for piece in segment(language, text):
        s = " ".join(piece.split())
        if s:
            sentences.append(s)
    return sentences


def split_sentences_keep_space(text: str, language: str = "en") -> list[tuple[str, str]]:
    """Sentences with the whitespace that followed each, so a paragraph can be rebuilt as written."""
    return _keep_space(segment(language, text))


def _keep_space(pieces: Iterable[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for piece in pieces:
        core = piece.strip()
        if not core:
            if out:  # whitespace-only piece: belongs to the previous sentence's gap
                out[-1] = (out[-1][0], out[-1][1] + piece)
            continue
        trailing = piece[len(piece.rstrip()) :]
        out.append((" ".join(core.split()), trailing))
    return out


def window_sentences(text: str, start: int, end: int, size: int, language: str = "en"
                     ) -> Iterator[list[tuple[str, str]]]:
    """The sentences of ``text[start:end]`` (as :func:`split_sentences_keep_space`), one window of at
    most about ``size`` characters at a time, so a 100 MB paragraph is never split (or tokenised) in
    one piece. A window ends after whitespace; its last sentence, when it has more than one, waits for
    the next window, so windows cut between sentences wherever a window holds a sentence end."""
    pos = start
    while pos < end:
        stop = min(end, cut_before(text, pos, size, after_space=True))
        piece = text[pos:stop]
        parts = list(segment(language, piece))
        if stop < end and len(parts) > 1 and "".join(parts) == piece and len(parts[-1]) < len(piece):
            stop -= len(parts[-1])
            parts = parts[:-1]
        yield _keep_space(parts)
        pos = stop


def split_long(sentence: str, count: TokenCounter, budget: int) -> list[str]:
    """Cut one sentence that is over ``budget`` tokens at word boundaries (characters as a last
    resort, for a 'word' such as a long URL), so every piece fits."""
    words = sentence.split()
    lengths = count(words)
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word, n in zip(words, lengths, strict=True):
        if n > budget:  # one word over the budget: cut it into character slices that fit
            if current:
                pieces.append(" ".join(current))
                current, used = [], 0
            step = max(1, len(word) * budget // max(n, 1))
            pieces.extend(word[i : i + step] for i in range(0, len(word), step))
            continue
        # +1: the joining space may cost a token of its own in some vocabularies
        if current and used + n + 1 > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += n + (1 if len(current) > 1 else 0)
    if current:
        pieces.append(" ".join(current))
    return pieces


def fit_sentences(sentences: Sequence[str], count: TokenCounter, budget: int) -> tuple[list[str], list[int]]:
    """Sentences with every over-long one cut into pieces that fit; returns pieces and their lengths."""
    fitted: list[str] = []
    for sentence, n in zip(sentences, count(sentences), strict=True):
        fitted.extend(split_long(sentence, count, budget) if n > budget else [sentence])
    return fitted, count(fitted)


def pack(sentences: Sequence[str], count: TokenCounter, budget: int) -> list[str]:
    """Consecutive sentences packed greedily into chunks of at most ``budget`` tokens each."""
    if not sentences:
        return []
    fitted, lengths = fit_sentences(sentences, count, budget)
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for sentence, n in zip(fitted, lengths, strict=True):
        if current and used + n + 1 > budget:
            chunks.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += n + (1 if len(current) > 1 else 0)
    if current:
        chunks.append(" ".join(current))
    return chunks
