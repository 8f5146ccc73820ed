"""From a path (or an attachment's bytes) to documents, by file extension.

Single-document formats are read whole (one file at a time, so memory follows the largest file,
not the folder); exports are streamed row by row. Any failure becomes a failed document with a
specific reason, and the next file is read.
"""

from __future__ import annotations

import errno
import io
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from docqueue.errors import DocumentError
from docqueue.names import GENERATE
from producer.loaders import guard, markup, pdf, plain, records, word
from producer.loaders.base import (
    CountingReader,
    Extracted,
    Limits,
    LoadedDocument,
    LoadOptions,
    ReadStats,
    checked_text,
    failed,
    from_error,
    sha256_hex,
)
from producer.loaders.mail import iter_message
from producer.loaders.openai_batch import iter_requests, read_batch_file
from producer.loaders.paths import iter_paths

#: Formats whose file is one document: extension -> ``bytes -> Extracted`` (raises DocumentError).
EXTRACTORS: dict[str, Callable[[bytes], Extracted]] = {
    ".txt": plain.extract, ".text": plain.extract, ".md": plain.extract, ".markdown": plain.extract,
    ".pdf": pdf.extract,
    ".docx": word.extract,
    ".html": markup.extract, ".htm": markup.extract, ".xhtml": markup.extract,
}
EMAIL_SUFFIXES = frozenset({".eml"})
SUPPORTED_SUFFIXES = frozenset(EXTRACTORS) | EMAIL_SUFFIXES | records.SUFFIXES

#: A forwarded mail inside a forwarded mail inside...: stop somewhere.
MAX_NESTING = 5

_CORRUPT_KIND = {".pdf": "corrupt_pdf", ".docx": "corrupt_docx", ".eml": "corrupt_email"}


def _unsupported(source: str, suffix: str, **provenance: Any) -> LoadedDocument:
    return failed(source, "unsupported_format", f"unsupported file type {suffix or '(no extension)'!r}; "
                  f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}", **provenance)


def load_bytes(data: bytes, source: str, suffix: str, meta: dict[str, Any], depth: int = 0,
               options: LoadOptions | None = None) -> Iterator[LoadedDocument]:
    """The documents in ``data`` read as a ``suffix`` file (a whole file, or an attachment)."""
    options = (options or LoadOptions()).resolved()
    limits = options.limits or Limits()
    digest = sha256_hex(data)
    if suffix in EMAIL_SUFFIXES:
        if depth > MAX_NESTING:
            yield failed(source, "too_deeply_nested", f"{source}: more than {MAX_NESTING} messages deep",
                         sha256=digest, meta=meta)
            return

        def nested(payload: bytes, name: str, sfx: str, m: dict[str, Any], d: int) -> Iterator[LoadedDocument]:
            return load_bytes(payload, name, sfx, m, d, options)

        yield from iter_message(data, source, meta, depth, nested, options.clean_text)
        return
    if suffix in records.SUFFIXES:
        yield from records.iter_rows(io.BufferedReader(io.BytesIO(data)), source, suffix, options)
        return
    extractor = EXTRACTORS.get(suffix)
    if extractor is None:
        yield _unsupported(source, suffix, sha256=digest, meta=meta)
        return
    try:
        if suffix == ".docx":
            word.check_expansion(data, limits.max_expanded_bytes)
        if suffix in guard.GUARDED_SUFFIXES and limits.parse_timeout_s > 0:
            extracted = guard.extract(suffix, data, limits.parse_timeout_s, limits.parse_memory_mb)
        else:
            extracted = extractor(data)
    except DocumentError as e:
        yield from_error(source, e, sha256=digest, meta=meta)
        return
    except Exception as e:  # a parser bug on a hostile file must not stop the submission
        kind = _CORRUPT_KIND.get(suffix, "unreadable")
        yield failed(source, kind, f"{source}: cannot be read ({type(e).__name__}: {e})", sha256=digest, meta=meta)
        return
    if len(extracted.text) > limits.max_document_chars:
        yield failed(source, "too_large", f"{source}: {len(extracted.text):,} characters of text, over "
                     f"max_document_chars ({limits.max_document_chars:,})", sha256=digest, meta=meta)
        return
    try:
        text, cleaned = checked_text(extracted.text, options.clean_text)
    except DocumentError as e:
        yield from_error(source, e, sha256=digest, meta=meta)
        return
    yield LoadedDocument(source=source, text=text, sha256=digest, meta={**meta, **extracted.meta, **cleaned},
                         page_offsets=extracted.page_offsets)


def _read_failure(source: str, e: OSError) -> LoadedDocument:
    if isinstance(e, FileNotFoundError):
        return failed(source, "not_found", f"no such file: {source}")
    if e.errno == errno.ELOOP:
        return failed(source, "symlink_loop", f"{source}: symbolic links loop, no file at the end")
    return failed(source, "unreadable", f"cannot read {source}: {e}")



def load_path(path: Path, options: LoadOptions | None = None, stats: ReadStats | None = None
              ) -> Iterator[LoadedDocument]:
    """The documents of one file: one for most formats, one per row for exports, one per
    attachment more for e-mail."""
    options = (options or LoadOptions()).resolved()
    limits = options.limits or Limits()
    stats = stats if stats is not None else ReadStats()
    source, suffix = str(path), path.suffix.lower()
    try:
        st = path.stat()
    except OSError as e:
        # checked before the extension, so a missing folder such as ``/tmp/missingdir/`` is
        # reported missing, not as an unsupported file type
        yield _read_failure(source, e)
        return
    if not stat.S_ISREG(st.st_mode):
        # a FIFO named *.txt would block the read (and the whole submission) forever; a device
        # would never end
        stats.files += 1
        yield failed(source, "unreadable", f"{source}: not a regular file (a FIFO, socket or device); "
                     "docqueue reads regular files only")
        return
    size = st.st_size
    if suffix not in SUPPORTED_SUFFIXES:
        stats.files += 1
        yield _unsupported(source, suffix)
        return
    if suffix in records.SUFFIXES:
        try:
            raw = path.open("rb", buffering=0)
        except OSError as e:
            yield _read_failure(source, e)
            return
        stats.files += 1
        with io.BufferedReader(CountingReader(raw, stats), buffer_size=plain.SAMPLE_BYTES) as stream:
            yield from records.iter_rows(stream, source, suffix, options)
        return
    if size > limits.max_file_bytes:
        # exports are streamed, so for them the limit is per row (records.py); a whole file is not
        # read at all when it is over, so a 10 GB "PDF" costs one stat
        stats.files += 1
        yield failed(source, "too_large", f"{source}: {size:,} bytes, over max_file_bytes "
                     f"({limits.max_file_bytes:,})")
        return
    try:
        data = path.read_bytes()
    except OSError as e:
        yield _read_failure(source, e)
        return
    stats.files += 1
    stats.bytes += len(data)
    yield from load_bytes(data, source, suffix, {}, 0, options)


def iter_documents(inputs: Iterable[str], options: LoadOptions | None = None,
                   stats: ReadStats | None = None) -> Iterator[LoadedDocument]:
    """Documents for every input path, folder or glob, lazily: each file is read when the consumer
    asks for its documents, never before."""
    options = (options or LoadOptions()).resolved()
    for path in iter_paths(inputs, options.include, options.exclude, options.hidden):
        yield from load_path(path, options, stats)


def iter_task_documents(task: str, inputs: Iterable[str], options: LoadOptions | None = None,
                        stats: ReadStats | None = None) -> Iterator[LoadedDocument]:
    """The documents of ``task``: generate reads OpenAI Batch API files, a request per line
    (:mod:`producer.loaders.openai_batch`); every other task reads files as :func:`iter_documents`."""
    if task == GENERATE:
        return iter_requests(inputs, options, stats)
    return iter_documents(inputs, options, stats)


def load_task_path(task: str, path: Path, options: LoadOptions | None = None) -> Iterator[LoadedDocument]:
    """One file's documents for ``task`` (see :func:`iter_task_documents`)."""
    if task == GENERATE:
        return read_batch_file(path, (options or LoadOptions()).resolved(), ReadStats())
    return load_path(path, options)
