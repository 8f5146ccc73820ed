"""HTML: the text a reader sees, through BeautifulSoup on lxml.

Scripts, styles, templates, ``<head>`` and elements hidden with ``hidden`` or an inline
``display: none`` are dropped; block elements end a line, table cells are separated by a space.
The encoding is taken from the BOM, ``<meta charset>`` or detection (BeautifulSoup's UnicodeDammit).
The page title goes into the document's metadata.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from producer.loaders.base import Extracted

_INVISIBLE = ("script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object", "embed")
_BLOCKS = ("address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "fieldset",
           "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
           "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul", "caption")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def visible_text(html: str | bytes) -> tuple[str, str | None]:
    """``(text, title)`` of an HTML document or fragment."""
    soup = BeautifulSoup(html, "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title else None
    for tag in soup.find_all(_INVISIBLE):
        tag.decompose()
    for tag in soup.find_all(True, attrs={"hidden": True}) + soup.find_all(style=_HIDDEN_STYLE):
        if not tag.decomposed:
            tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(("td", "th")):
        tag.append(" ")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before("\n")
        tag.append("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line), title or None


def extract(data: bytes) -> Extracted:
    text, title = visible_text(data)
    return Extracted(text=text, meta={"title": title} if title else {})
