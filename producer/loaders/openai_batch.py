"""OpenAI Batch API input files (``docqueue submit generate requests.jsonl``): one document per line.

Each line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``
(:class:`docqueue.chat.BatchLine`). A good line becomes a document whose text is its body as JSON
(the request the worker runs) and whose id is its ``custom_id``. A bad line becomes a failed
document of its own, with its line number and what is wrong, like an export row the loaders cannot
read; the lines after it go on. The file is read as a stream, a line at a time.
"""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from docqueue.chat import CUSTOM_ID_MAX_LENGTH, parse_line
from docqueue.errors import DocumentError
from docqueue.storable import text_problem
from producer.loaders.base import CountingReader, Limits, LoadedDocument, LoadOptions, ReadStats, failed, sha256_hex
from producer.loaders.paths import iter_paths

#: Bytes of a line beyond the longest document allowed (its JSON around the text).
_LINE_SLACK = 64 * 1024


def iter_requests(inputs: Iterable[str], options: LoadOptions | None = None,
                  stats: ReadStats | None = None) -> Iterator[LoadedDocument]:
    """The requests of every batch file named by ``inputs`` (files, folders, globs), lazily."""
    options = (options or LoadOptions()).resolved()
    for path in iter_paths(inputs, options.include, options.exclude, options.hidden):
        yield from read_batch_file(path, options, stats if stats is not None else ReadStats())


def read_batch_file(path: Path, options: LoadOptions, stats: ReadStats) -> Iterator[LoadedDocument]:
    source = str(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            yield failed(source, "unreadable", f"{source}: not a regular file; a batch file is a JSONL file")
            return
        raw = path.open("rb", buffering=0)
    except FileNotFoundError:
        yield failed(source, "not_found", f"no such file: {source}")
        return
    except OSError as e:
        yield failed(source, "unreadable", f"cannot read {source}: {e}")
        return
    stats.files += 1
    limits = options.limits or Limits()
    seen: set[str] = set()
    with io.BufferedReader(CountingReader(raw, stats)) as stream:
        for line_no, line in enumerate(stream, start=1):
            if line.strip():
                yield _request(source, line_no, line, seen, limits)


def _request(source: str, line_no: int, line: bytes, seen: set[str], limits: Limits) -> LoadedDocument:
    where = f"{source} line {line_no}"
    if len(line) > limits.max_document_chars + _LINE_SLACK:
        return failed(source, "too_large", f"{where}: {len(line):,} bytes, over max_document_chars",
                      source_row=line_no)
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        return failed(source, "undecodable", f"{where}: not UTF-8 ({e})", source_row=line_no)
    except ValueError as e:
        return failed(source, "invalid_json", f"{where}: {e}", source_row=line_no)
    custom_id = record.get("custom_id") if isinstance(record, dict) else None
    custom_id = (custom_id if isinstance(custom_id, str) and 0 < len(custom_id) <= CUSTOM_ID_MAX_LENGTH
                 and not text_problem(custom_id) else None)
    try:
        request = parse_line(record)
    except DocumentError as e:
        return failed(source, e.kind, f"{where}: {e.message}", source_row=line_no, external_id=custom_id)
    if request.custom_id in seen:
        return failed(source, "duplicate_custom_id", f"{where}: custom_id {request.custom_id!r} appears on an "
                      "earlier line; custom_id must be unique in a batch file", source_row=line_no,
                      external_id=custom_id)
    seen.add(request.custom_id)
    text = request.body.text()
    return LoadedDocument(source=source, text=text, sha256=sha256_hex(text.encode("utf-8")), source_row=line_no,
                          external_id=request.custom_id)
