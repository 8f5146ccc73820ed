"""Turning paths, folders and globs into documents, one at a time (a stream, never a list).

One module per format: ``plain`` (.txt/.md, encoding detected), ``pdf`` (pypdf, page offsets),
``word`` (.docx, python-docx), ``markup`` (HTML visible text, BeautifulSoup + lxml), ``mail`` (.eml,
attachments as documents), ``records`` (JSONL/CSV exports, one document per row), ``openai_batch``
(generate's OpenAI Batch API files, one request per line); ``paths`` picks
the files and ``dispatch`` routes each to its format. A file that cannot be read becomes a
:class:`LoadedDocument` with a specific ``error_kind``; the submission goes on.
"""

from __future__ import annotations

from producer.loaders.base import LoadedDocument, LoadOptions, ReadStats
from producer.loaders.dispatch import (
    SUPPORTED_SUFFIXES,
    iter_documents,
    iter_task_documents,
    load_bytes,
    load_path,
    load_task_path,
)
from producer.loaders.paths import iter_paths
from producer.loaders.pdf import page_of

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadOptions",
    "LoadedDocument",
    "ReadStats",
    "iter_documents",
    "iter_paths",
    "iter_task_documents",
    "load_bytes",
    "load_path",
    "load_task_path",
    "page_of",
]
