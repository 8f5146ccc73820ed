"""Training examples: read from a user's JSONL or CSV once, checked, and kept in one canonical form.

The producer reads and checks the file (a bad row is reported with its line before anything is
queued); the canonical JSONL (``{"text": ..., "labels": [...]}`` per line) is what the training job
stores as its document and what the worker trains on, and its sha256 is the data hash on the model's
card: the same examples give the same hash whatever the file's format or field names were.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

#: The examples are stored in the database (one document), never on the queue; bound them anyway.
MAX_EXAMPLES_BYTES = 64 * 2**20
MAX_EXAMPLES = 200_000


class ExamplesError(ValueError):
    """The examples file cannot be trained on; the message names the file and the line."""


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]


def _labels_of(value: object, multi: bool, where: str, field: str) -> tuple[str, ...]:
    if multi:
        if isinstance(value, str):  # CSV: a ';'- or ','-separated cell; JSON may also give a string
            value = [v for part in value.split(";") for v in part.split(",")]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ExamplesError(f"{where}: {field!r} must be a list of label strings")
        return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
    if not isinstance(value, str) or not value.strip():
        raise ExamplesError(f"{where}: {field!r} must be a non-empty string")
    return (value.strip(),)


def parse(data: str, *, source: str, text_field: str = "text", label_field: str = "label",
          labels_field: str | None = None, csv_format: bool = False) -> list[Example]:
    """Examples from JSONL (one object per line) or CSV (a header row). With ``labels_field`` each
    example has a list of labels (multi-label; an empty list is allowed: none applies)."""
    field = labels_field or label_field
    multi = labels_field is not None
    rows: list[tuple[int, object]]
    if csv_format:
        reader = csv.DictReader(io.StringIO(data))
        try:
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as e:
            raise ExamplesError(f"{source}: not readable CSV: {e}") from e
    else:
        rows = []
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ExamplesError(f"{source} line {n}: not JSON ({e.msg})") from e
    examples = []
    for n, row in rows:
        where = f"{source} line {n}"
        if not isinstance(row, dict):
            raise ExamplesError(f"{where}: not an object with {text_field!r} and {field!r}")
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise ExamplesError(f"{where}: {text_field!r} must be a non-empty string")
        if field not in row:
            raise ExamplesError(f"{where}: no {field!r} field" + ("" if multi else " (multi-label? --labels-field)"))
        examples.append(Example(text, _labels_of(row[field], multi, where, field)))
    check(examples, source, multi)
    return examples


def check(examples: list[Example], source: str, multi: bool) -> None:
    if len(examples) > MAX_EXAMPLES:
        raise ExamplesError(f"{source}: {len(examples)} examples; at most {MAX_EXAMPLES}")
    labels = {label for e in examples for label in e.labels}
    if len(labels) < (1 if multi else 2):
        raise ExamplesError(f"{source}: {len(examples)} example(s) with {len(labels)} distinct label(s); "
                            f"training needs at least {'one' if multi else 'two'}")


def read(path: Path, **options: str | None) -> list[Example]:
    """:func:`parse` of a file; ``.csv`` is CSV, anything else JSONL."""
    try:
        size = path.stat().st_size
        if size > MAX_EXAMPLES_BYTES:
            raise ExamplesError(f"{path}: {size / 2**20:.0f} MiB; at most {MAX_EXAMPLES_BYTES // 2**20} MiB")
        data = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ExamplesError(f"{path}: cannot read it ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ExamplesError(f"{path}: not UTF-8 text") from e
    return parse(data, source=str(path), csv_format=path.suffix.lower() == ".csv",
                 text_field=options.get("text_field") or "text", label_field=options.get("label_field") or "label",
                 labels_field=options.get("labels_field"))


def canonical(examples: list[Example]) -> str:
    """The one JSONL form the job stores and trains on."""
    return "".join(json.dumps({"text": e.text, "labels": list(e.labels)}, ensure_ascii=False) + "\n"
                   for e in examples)


def from_canonical(data: str) -> list[Example]:
    return [Example(row["text"], tuple(row["labels"])) for row in map(json.loads, data.splitlines()) if row]


def sha256(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
