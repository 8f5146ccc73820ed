"""Markdown structure, read before a text is cut into sentences.

A ``.md`` file (and many inline documents) reaches the engines as raw Markdown. Split into sentences
as plain prose, its structure leaks into summaries: a fenced code block became the "summary"
(``self.embedding = nn. # 初始化模型 …``), a heading with no full stop was glued to the sentence after
it (``### 3.1 基于 Transformer 的架构 大多数 …``), and table rows read as sentences. So the structure is
read first, line by line, the way CommonMark does at block level:

* fenced code (```` ``` ```` or ``~~~``) and tables are not prose: dropped;
* ATX (``# Title``) and setext (``Title`` over ``===``) headings are blocks of their own, marked, so
  they end the sentence before them and are never summary candidates;
* each list item and each paragraph is a block; blockquote markers are removed;
* inline markup keeps its words: ``[text](url)`` -> ``text``, ``**bold**`` -> ``bold``, ```code``` ->
  ``code``; images and HTML comments are dropped.

Plain text has none of these marks and comes out as its paragraphs, unchanged, so contracts and
abstracts are split as before. No Markdown library is used: the engines need the block boundaries
only, and a full parser (markdown-it) renders HTML that would have to be read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROSE = "prose"
HEADING = "heading"
ITEM = "item"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+(?=\S)")
_QUOTE = re.compile(r"^[ \t]{0,3}>[ \t]?")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$")
_TABLE_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_CODE_SPAN = re.compile(r"`+([^`]+)`+")


@dataclass(frozen=True)
class Block:
    """One block of a document: its text (inline markup removed, lines joined) and its kind."""

    text: str
    kind: str


def _inline(text: str) -> str:
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return _CODE_SPAN.sub(r"\1", text)


class _Reader:
    """Collects the lines of the open block and closes it into a :class:`Block`."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lines: list[str] = []
        self.kind = PROSE

    def close(self) -> None:
        text = " ".join(_inline(" ".join(self.lines)).split())
        if text:
            self.blocks.append(Block(text, self.kind))
        self.lines, self.kind = [], PROSE

    def open(self, kind: str, first: str) -> None:
        self.close()
        self.kind = kind
        self.lines.append(first)


def blocks(text: str) -> list[Block]:
    """The blocks of ``text`` in order, code and tables left out (see the module docstring)."""
    reader = _Reader()
    fence: str | None = None
    lines = _COMMENT.sub("", text).splitlines()
    for i, line in enumerate(lines):
        if fence is not None:  # inside fenced code: skip to the closing fence
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        opening = _FENCE.match(line)
        if opening:
            reader.close()
            fence = opening.group(1)
            continue
        line = _QUOTE.sub("", line)
        if not line.strip():
            reader.close()
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _TABLE_DELIMITER.match(line) or _TABLE_ROW.match(line) or (
                "|" in line and _TABLE_DELIMITER.match(nxt)):
            reader.close()  # a table row, its delimiter, or its header row
            continue
        heading = _ATX.match(line)
        if heading:
            reader.open(HEADING, heading.group(2))
            reader.close()
            continue
        if _SETEXT.match(line) and len(reader.lines) == 1 and reader.kind == PROSE:
            reader.kind = HEADING  # "Title" over "=====": the line before was a heading
            reader.close()
            continue
        if _BREAK.match(line):
            reader.close()
            continue
        item = _ITEM.match(line)
        if item:
            reader.open(ITEM, line[item.end():])
            continue
        reader.lines.append(line)
    reader.close()
    return reader.blocks
