"""Bounded character windows of a long text, so no engine ever tokenises a whole huge document.

A fast tokenizer holds tens of bytes per *character* while it works (normalised string, alignments,
offsets, then the token list): tokenising a 100 MB text at once took a worker child to 13 GB. Every
engine therefore reads a document through windows of a few thousand characters, cut at whitespace,
and tokenises one window at a time. Windows end at the end of a word (the whitespace after it opens
the next window), so for the whitespace-splitting tokenizers docqueue uses (WordPiece, byte-level BPE)
the tokens of a window are exactly the tokens that text has inside the whole document.

Pure functions on ``str``; slicing copies only the window, never the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

#: Characters per token assumed when sizing a window from a token budget: generous (English runs
#: at 4-5 characters a token with WordPiece), so a window rarely holds fewer tokens than meant.
CHARS_PER_TOKEN = 8
#: A window is this many model windows long (at ``CHARS_PER_TOKEN``): big enough that cutting costs
#: nothing measurable, small enough that tokenising it costs a few MB.
MODEL_WINDOWS_PER_WINDOW = 4
#: The whitespace before a cut is looked for in the last this share of the window; a window with no
#: whitespace there (a base64 blob, a 'word' of 50,000 letters) is cut hard at its size.
_LOOK_BACK = 0.5

_WHITESPACE = re.compile(r"\s")
#: Whitespace a window is cut at (``str.rfind`` per character: no pure-Python scan of the window).
_CUT_CHARS = (" ", "\n", "\t", "\r", "\f", "\v", "\u00a0", "\u3000")
_NON_SPACE = re.compile(r"\S")

Counter = Callable[[Sequence[str]], list[int]]


def window_chars(max_tokens: int) -> int:
    """Characters of one window for a model reading ``max_tokens`` tokens at a time."""
    return max(256, max_tokens * CHARS_PER_TOKEN * MODEL_WINDOWS_PER_WINDOW)


def cut_before(text: str, pos: int, size: int, *, after_space: bool = False) -> int:
    """Where a window starting at ``pos`` ends: at most ``size`` characters on, before the last
    whitespace run in its second half (``after_space``: after that run, so the whitespace stays with
    this window); ``len(text)`` when the rest fits."""
    end = pos + size
    if end >= len(text):
        return len(text)
    floor = pos + max(1, int(size * (1 - _LOOK_BACK)))
    # the last whitespace at or before ``end`` (the character at ``end`` opens the next window)
    found = max(text.rfind(c, floor, end + 1) for c in _CUT_CHARS)
    if found <= floor:
        return end  # no whitespace to cut at: a hard cut
    cut = found
    if after_space:
        m = _NON_SPACE.search(text, cut, end + size)
        return m.start() if m else min(len(text), end + size)
    while cut > floor and text[cut - 1].isspace():
        cut -= 1
    return cut


def windows(text: str, size: int, start: int = 0, stop: int | None = None, *,
            after_space: bool = False) -> Iterator[tuple[int, int]]:
    """``(start, end)`` spans covering ``text[start:stop]`` in order, each at most ``size`` long."""
    stop = len(text) if stop is None else stop
    pos = start
    while pos < stop:
        end = min(stop, cut_before(text, pos, size, after_space=after_space))
        yield pos, end
        pos = end


def token_prefix(text: str, count: Counter, tokens: int, size: int) -> str:
    """The shortest prefix of ``text``, ending at a window cut, that holds at least ``tokens``
    tokens (the whole text when it has fewer): a model that reads only its first ``tokens`` tokens
    gets exactly the same input from the prefix, at the cost of tokenising a few windows."""
    if len(text) <= size:
        return text
    have = 0
    for _start, end in windows(text, size):
        have += count([text[_start:end]])[0]
        if have >= tokens:
            return text[:end]
    return text


def has_text(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace (``text.strip()`` would copy all of it)."""
    return _NON_SPACE.search(text) is not None


def head(text: str, chars: int) -> str:
    """The first ``chars`` characters after leading whitespace, stripped, without copying the rest."""
    m = _NON_SPACE.search(text)
    return "" if m is None else text[m.start() : m.start() + chars].strip()


def bounded_prefix(text: str, chars: int) -> str:
    """``text`` itself when it has at most ``chars`` characters, else its first ``chars`` or fewer,
    cut at whitespace."""
    if len(text) <= chars:
        return text
    return text[: cut_before(text, 0, chars)]


def sample_spans(text: str, budget: int, size: int) -> list[tuple[int, int]]:
    """Spans of ``text`` totalling at most about ``budget`` characters: all of it when it fits;
    else the first half of the budget as one span, then windows of ``size`` spread evenly over the
    rest (the last one reaching the end), so a long document's middle and end are read too."""
    if len(text) <= budget:
        return [(0, len(text))]
    head_end = cut_before(text, 0, budget // 2)
    spans = [(0, head_end)]
    rest = len(text) - head_end
    n = max(1, (budget - head_end) // size)
    step = rest / n
    for k in range(n):
        start = head_end + int(k * step)
        if k == n - 1:
            start = max(start, len(text) - size)
        # start on a word: after the first whitespace in the window (unless there is none)
        m = _WHITESPACE.search(text, start, min(len(text), start + size // 4))
        start = m.end() if m else start
        end = cut_before(text, start, size)
        if start < end and start >= spans[-1][1]:
            spans.append((start, end))
    return spans


def bounded_counter(count: Counter, max_chars: int) -> Counter:
    """``count`` called on slices of its input holding at most ``max_chars`` characters (one over-long
    text goes alone, cut first by its caller), so counting many sentences never tokenises them all
    at once."""

    def counted(texts: Sequence[str]) -> list[int]:
        out: list[int] = []
        batch: list[str] = []
        used = 0
        for t in texts:
            if batch and used + len(t) > max_chars:
                out.extend(count(batch))
                batch, used = [], 0
            batch.append(t)
            used += len(t)
        if batch:
            out.extend(count(batch))
        return out

    return counted

