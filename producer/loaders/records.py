"""Exports from other systems: one document per JSONL line or CSV row, read as a stream.

The file is decoded incrementally (encoding judged on its first bytes), so a 1 GB export costs a
buffer's worth of memory and its first rows are stored and enqueued while the rest is still being
read. ``--text-field`` names the text (default ``text``), ``--id-field`` the row's own id; every
other field is kept as metadata and returned with the result. A row's ``sha256`` is that of its
text encoded as UTF-8 (the rest of the row does not change what the model sees).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from docqueue.errors import DocumentError
from producer.loaders.base import (
    Limits,
    LoadedDocument,
    LoadOptions,
    checked_text,
    clean_text,
    clean_value,
    failed,
    sha256_hex,
)
from producer.loaders.plain import SAMPLE_BYTES, stream_codec

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
SUFFIXES = JSONL_SUFFIXES | CSV_SUFFIXES

_SNIFF_CHARS = 32 * 1024

# A document in a cell can be far larger than csv's 128 KiB default field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _row_document(source: str, row: int, text: Any, row_id: Any, meta: dict[str, Any],
                  options: LoadOptions) -> LoadedDocument:
    external_id = None if row_id is None or row_id == "" else clean_text(str(row_id))[:512]
    if not isinstance(text, str):
        return failed(source, "missing_text_field",
                      f"{source} row {row}: no string field {options.text_field!r} (see --text-field)",
                      source_row=row, external_id=external_id, meta=clean_value(meta))
    limits = options.limits or Limits()
    if len(text) > limits.max_document_chars or (len(text) * 4 > limits.max_file_bytes and \
            len(text.encode("utf-8", "replace")) > limits.max_file_bytes):
        return failed(source, "too_large", f"{source} row {row}: {len(text):,} characters, over "
                      f"max_document_chars/max_file_bytes", source_row=row, external_id=external_id)
    try:
        stored, cleaned = checked_text(text, options.clean_text)
    except DocumentError as e:
        return failed(source, e.kind, f"{source} row {row}: {e.message}", source_row=row, external_id=external_id,
                      meta=clean_value(meta))
    return LoadedDocument(source=source, text=stored, sha256=sha256_hex(text.encode("utf-8", "replace")),
                          meta={**clean_value(meta), **cleaned}, source_row=row, external_id=external_id)


def _jsonl_rows(text: IO[str], source: str, options: LoadOptions) -> Iterator[LoadedDocument]:
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield failed(source, "invalid_json", f"{source} line {line_no}: {e}", source_row=line_no)
            continue
        if not isinstance(record, dict):
            yield failed(source, "invalid_row", f"{source} line {line_no}: a JSON object is needed, "
                         f"not {type(record).__name__}", source_row=line_no)
            continue
        meta = {k: v for k, v in record.items() if k not in (options.text_field, options.id_field)}
        yield _row_document(source, line_no, record.get(options.text_field),
                            record.get(options.id_field) if options.id_field else None, meta, options)


def _dialect(sample: str, suffix: str, text_field: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect: tab for ``.tsv``; else sniffed (``;`` exports from European spreadsheets),
    falling back to plain commas when sniffing fails or loses the text column."""
    if suffix == ".tsv":
        return csv.excel_tab
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel
    header = next(csv.reader(io.StringIO(sample), sniffed), [])
    return sniffed if text_field in header else csv.excel


class _RecordTooLong(Exception):
    """Raised inside the line feed: a quoted field ran on past any document's size."""


def _strict_records(text: IO[str], dialect: type[csv.Dialect] | csv.Dialect,
                    max_chars: int) -> Iterator[tuple[int, list[str] | str]]:
    """``(first line, cells)`` per record, or ``(first line, reason)`` for a record that breaks the
    quoting.

    csv's default (non-strict) mode keeps reading after a stray quote, so one broken row swallows
    the rows after it into its text. Strict mode raises instead; the lines of the broken record,
    after its first, are then read again as records of their own: one bad row costs itself only.
    """
    pending: deque[tuple[int, str]] = deque()
    lines = enumerate(text, start=1)
    consumed: list[tuple[int, str]] = []
    size = 0

    def feed() -> Iterator[str]:
        nonlocal size
        while True:
            item = pending.popleft() if pending else next(lines, None)
            if item is None:
                return
            consumed.append(item)
            size += len(item[1])
            if size > max_chars:
                raise _RecordTooLong
            yield item[1]

    while True:
        # doublequote: RFC 4180's "" escape. The sniffer often guesses False, which turns a stray quote
        # into plain text instead of an error, and strict mode then catches nothing.
        reader = csv.reader(feed(), dialect, strict=True, doublequote=True)
        while True:
            consumed.clear()
            size = 0
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                reason = f"broken quoting ({e})"
            except _RecordTooLong:
                reason = f"a quoted field runs on for over {max_chars:,} characters without closing"
            else:
                yield consumed[0][0], cells
                continue
            yield consumed[0][0], reason
            pending.extendleft(reversed(consumed[1:]))
            break


def _csv_rows(text: IO[str], sample: str, source: str, suffix: str,
              options: LoadOptions) -> Iterator[LoadedDocument]:
    limits = options.limits or Limits()
    records = _strict_records(text, _dialect(sample, suffix, options.text_field), limits.max_document_chars + 1)
    header_line, header = next(records, (1, []))
    if isinstance(header, str):
        yield failed(source, "corrupt_csv", f"{source} line {header_line}: the header row has {header}")
        return
    fields = header
    if options.text_field not in fields:
        yield failed(source, "missing_text_field", f"{source}: no column {options.text_field!r} "
                     f"(columns: {', '.join(map(str, fields)) or 'none'}); choose one with --text-field")
        return
    row_no = 0
    for line_no, cells in records:
        if not cells:
            continue  # a blank line, as csv.DictReader skips them
        row_no += 1
        if isinstance(cells, str):
            yield failed(source, "invalid_row", f"{source} line {line_no} (row {row_no}): {cells}; "
                         "the row is skipped, the rows after it are read", source_row=row_no)
            continue
        # as csv.DictReader: missing cells are None, cells beyond the header go to "_extra"
        row: dict[str, str | None] = dict(zip(fields, [*cells, *[None] * (len(fields) - len(cells))], strict=False))
        meta: dict[str, Any] = {k: v for k, v in row.items() if k not in (options.text_field, options.id_field)}
        if len(cells) > len(fields):
            meta["_extra"] = cells[len(fields):]  # cells beyond the header
        yield _row_document(source, row_no, row.get(options.text_field) or "",
                            row.get(options.id_field) if options.id_field else None, meta, options)


def iter_rows(stream: io.BufferedReader[Any], source: str, suffix: str,
              options: LoadOptions) -> Iterator[LoadedDocument]:
    """Documents of one export, row by row. A file that turns out unreadable part-way yields a
    failed document for the rest, after the rows already read."""
    produced = 0
    try:
        sample = stream.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
        encoding, errors = stream_codec(sample)
        text = io.TextIOWrapper(stream, encoding=encoding, errors=errors,
                                newline="" if suffix in CSV_SUFFIXES else None)
        if suffix in JSONL_SUFFIXES:
            rows = _jsonl_rows(text, source, options)
        else:
            head = sample[:_SNIFF_CHARS * 4].decode(encoding, errors="ignore")[:_SNIFF_CHARS]
            rows = _csv_rows(text, head, source, suffix, options)
        for doc in rows:
            produced += 1
            yield doc
    except DocumentError as e:
        yield failed(source, e.kind, f"{source}: {e.message}")
    except UnicodeDecodeError as e:
        yield failed(source, "undecodable", f"{source}: undecodable after {produced} rows ({e.reason}); "
                     "the rest of the file is skipped")
    except csv.Error as e:
        yield failed(source, "corrupt_csv", f"{source}: malformed CSV after {produced} rows ({e}); "
                     "the rest of the file is skipped")
