"""``docqueue results --format parquet``: a batch's outcomes as one Parquet file, for dataframes and
warehouses that read Parquet natively.

pyarrow is an optional extra (``pip install 'docqueue[parquet]'``): it is large, and only this
command needs it, so it is imported here, when asked for, with one clear error when it is missing.
Rows are written in row groups as they stream from the database, so a big batch is never held in
memory whole. ``result`` and ``metadata`` are JSON text columns: each task's result has its own
shape (docqueue/contract/<task>.result.schema.json), and JSON text keeps one file schema for all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import click

#: (column, pyarrow type name) in file order; the names follow the SQL view docqueue_results.
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("document", "string"), ("document_id", "string"), ("external_id", "string"), ("status", "string"),
    ("task", "string"), ("result", "string"), ("error_kind", "string"), ("error_message", "string"),
    ("model_id", "string"), ("model_revision", "string"), ("metadata", "string"), ("row", "int64"),
    ("reused_from", "string"), ("correlation_id", "string"),
)
ROW_GROUP = 10_000


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("error") or {}
    model = row.get("model") or {}
    return {
        "document": row["document"], "document_id": row["document_id"], "external_id": row.get("id"),
        "status": row["status"], "task": row["task"],
        "result": None if row.get("result") is None else json.dumps(row["result"], ensure_ascii=False),
        "error_kind": error.get("kind"), "error_message": error.get("message"),
        "model_id": model.get("id"), "model_revision": model.get("revision"),
        "metadata": json.dumps(row["metadata"], ensure_ascii=False) if row.get("metadata") else None,
        "row": row.get("row"), "reused_from": row.get("reused_from"), "correlation_id": row.get("correlation_id"),
    }


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def write_parquet(rows: Iterable[dict[str, Any]], output: Path) -> int:
    """Write ``iter_results`` rows to ``output``; returns how many were written."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise click.UsageError("--format parquet needs pyarrow, an optional extra: "
                               "pip install 'docqueue[parquet]' (or pip install pyarrow)") from e
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in PARQUET_COLUMNS])
    written = 0
    with pq.ParquetWriter(str(output), schema) as writer:
        for chunk in _chunks(rows, ROW_GROUP):
            flat = [_flat(r) for r in chunk]
            writer.write_table(pa.Table.from_pylist(flat, schema=schema))
            written += len(flat)
    return written
