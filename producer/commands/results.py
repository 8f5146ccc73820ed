"""``docqueue status BATCH`` and ``docqueue results BATCH``: where a batch stands, and every
document's outcome in the format asked for (JSON lines, CSV, a table, Parquet)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO

import click
from rich.console import Console

from docqueue import deadletter
from docqueue.broker import redis_client
from docqueue.names import GENERATE
from docqueue.schema import JobStatus
from producer.context import Context, err_console, json_option, pass_ctx
from producer.openai_output import write_output
from producer.queries import BatchNotFoundError, batch_counts, iter_results
from producer.render import results_table, summary_table


@click.command()
@click.argument("batch")
@json_option()
@pass_ctx
def status(obj: Context, batch: str, as_json: bool) -> None:
    """Counts of a batch's documents per state, and of its messages workers refused (`docqueue dlq`)."""
    rejected = _rejected_messages(obj, batch)
    try:
        counts = batch_counts(obj.engine, batch)
    except BatchNotFoundError:
        if not rejected:
            raise
        # every message of it was refused before a document could be stored: say that, not "no batch"
        counts = {"batch": batch, "task": "?", "total": 0, **{s.value: 0 for s in JobStatus}}
    counts["rejected"] = rejected
    if as_json:
        keys = ("batch", "total", "pending", "queued", "running", "succeeded", "failed", "cancelled", "rejected")
        click.echo(json.dumps({k: counts[k] for k in keys}))
    else:
        Console().print(summary_table(counts))
        if rejected:
            err_console.print(f"{rejected} message(s) of this batch were refused: docqueue dlq list --batch {batch}")


def _rejected_messages(obj: Context, batch: str) -> int:
    """Dead letters naming ``batch``; 0 when the broker cannot be asked (status still works)."""
    try:
        return deadletter.count_for_batch(redis_client(obj.broker_url, timeout=2), batch)
    except Exception:
        return 0


CSV_FIELDS = ("document", "document_id", "status", "task", "result", "error", "model")
CSV_EXTRA = ("metadata", "row", "id", "page_offsets", "reused_from", "correlation_id")


@click.command()
@click.argument("batch")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table", "parquet", "openai-batch"]),
              default="jsonl", envvar="DOCQUEUE_RESULTS_FORMAT", show_envvar=True,
              help="Output format; parquet needs -o and the optional extra docqueue[parquet] (pyarrow); "
                   "openai-batch (generate batches only) writes OpenAI's Batch API output file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), envvar="DOCQUEUE_RESULTS_OUTPUT",
              show_envvar=True, help="Write to this file instead of stdout.")
@pass_ctx
def results(obj: Context, batch: str, fmt: str, output: Path | None) -> None:
    """Every document's outcome: result, or the specific error."""
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a binary file: name it with -o FILE")
    if fmt == "openai-batch":
        _write_openai_batch(obj, batch, output)
        return
    rows = iter_results(obj.engine, batch)
    if fmt == "parquet":
        assert output is not None
        from producer.export import write_parquet

        write_parquet(rows, output)
        return
    if fmt == "table":
        Console().print(results_table(list(rows), limit=10**9))
        return
    stream: IO[str]
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt == "jsonl":
            for row in rows:
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=[*CSV_FIELDS, *CSV_EXTRA], extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                                 for k, v in row.items()})
    finally:
        if output:
            stream.close()


def _write_openai_batch(obj: Context, batch: str, output: Path | None) -> None:
    """The batch as an OpenAI Batch API output file (producer/openai_output.py)."""
    task = batch_counts(obj.engine, batch)["task"]
    if task != GENERATE:
        raise click.UsageError(f"--format openai-batch writes generate batches only; batch {batch} is a {task} "
                               "batch (use jsonl, csv, table or parquet)")
    stream: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        _, unfinished = write_output(iter_results(obj.engine, batch, finished_at=True), stream)
    finally:
        if output:
            stream.close()
    if unfinished:
        err_console.print(f"{unfinished} request(s) of batch {batch} are not finished yet and were left out "
                          f"(`docqueue status {batch}`)")
