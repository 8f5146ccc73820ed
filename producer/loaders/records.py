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
from collections.abc import Iterator
from typing import IO, Any

from docqueue.errors import DocumentError
from producer.loaders.base import Limits, LoadedDocument, LoadOptions, clean_text, clean_value, failed, sha256_hex
from producer.loaders.plain import SAMPLE_BYTES, detect_stream_encoding

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
    return LoadedDocument(source=source, text=clean_text(text), sha256=sha256_hex(text.encode("utf-8", "replace")),
                          meta=clean_value(meta), source_row=row, external_id=external_id)


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


def _csv_rows(text: IO[str], sample: str, source: str, suffix: str,
              options: LoadOptions) -> Iterator[LoadedDocument]:
    reader = csv.DictReader(text, dialect=_dialect(sample, suffix, options.text_field))
    fields = reader.fieldnames or []
    if options.text_field not in fields:
        yield failed(source, "missing_text_field", f"{source}: no column {options.text_field!r} "
                     f"(columns: {', '.join(map(str, fields)) or 'none'}); choose one with --text-field")
        return
    for row_no, row in enumerate(reader, start=1):
        extra = row.pop(None, None)  # cells beyond the header
        meta: dict[str, Any] = {k: v for k, v in row.items() if k not in (options.text_field, options.id_field)}
        if extra:
            meta["_extra"] = extra
        yield _row_document(source, row_no, row.get(options.text_field) or "",
                            row.get(options.id_field) if options.id_field else None, meta, options)


def iter_rows(stream: io.BufferedReader[Any], source: str, suffix: str,
              options: LoadOptions) -> Iterator[LoadedDocument]:
    """Documents of one export, row by row. A file that turns out unreadable part-way yields a
    failed document for the rest, after the rows already read."""
    produced = 0
    try:
        sample = stream.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
        encoding = detect_stream_encoding(sample)
        text = io.TextIOWrapper(stream, encoding=encoding, newline="" if suffix in CSV_SUFFIXES else None)
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
