"""``docqueue batches`` (list with counts) and ``docqueue cancel``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import click
from rich import box
from rich.console import Console
from rich.table import Table

from docqueue.events import emit_finished
from docqueue.models import utcnow
from docqueue.schema import JobStatus
from producer.batch_control import BATCH_STATES, cancel_batch, list_batches, purge_batches, purge_schedule_runs
from producer.context import Context, json_option, pass_ctx
from producer.render import counts_brief, id_column, plural

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None) -> datetime | None:
    """``30m``, ``2h``, ``7d`` (that long ago) or an ISO 8601 date/time (UTC when it names no zone)."""
    if not value:
        return None
    match = _DURATION.match(value.strip().lower())
    if match:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r}: use a duration like 30m, 2h, 7d or an ISO date",
                                 param_hint="--since") from e
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@click.command("batches")
@click.option("--status", "state", type=click.Choice(BATCH_STATES), envvar="DOCQUEUE_BATCHES_STATUS",
              show_envvar=True, default=None, help="Only batches in this state (derived from their jobs).")
@click.option("--since", envvar="DOCQUEUE_BATCHES_SINCE", show_envvar=True, default=None,
              help="Only batches created since: a duration (30m, 2h, 7d) or an ISO date/time.")
@click.option("--limit", type=click.IntRange(1), default=50, envvar="DOCQUEUE_BATCHES_LIMIT", show_envvar=True,
              help="Look at this many of the newest batches.")
@json_option("Machine-readable output on stdout (one object per line).")
@pass_ctx
def batches(obj: Context, state: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """Batches, newest first, with their documents per state."""
    found = list_batches(obj.engine, since=parse_since(since), state=state, limit=limit)
    if as_json:
        for b in found:
            click.echo(json.dumps(b.as_json()))
        return
    # light borders: an unwrapped id and the rest fit 80 columns (output that is not a terminal)
    table = Table(title=plural(len(found), "batch", "batches"), box=box.SIMPLE_HEAD, pad_edge=False)
    id_column(table, "batch", [b.id for b in found])
    table.add_column("task", no_wrap=True)
    table.add_column("created", no_wrap=True)  # month-day hour:minute (UTC); --json has the full time
    for column in ("state", "documents"):
        table.add_column(column, overflow="fold")
    for b in found:
        table.add_row(b.id, b.task, b.created_at.strftime("%m-%d %H:%M"), b.state,
                      f"{b.total}: {counts_brief({s.value: b.counts.get(s.value, 0) for s in JobStatus})}")
    Console().print(table)


@click.command("cancel")
@click.argument("batch")
@json_option()
@pass_ctx
def cancel(obj: Context, batch: str, as_json: bool) -> None:
    """Cancel a batch's unfinished jobs: workers skip them, a running one's result is discarded, and
    reuse never copies from them."""
    now = utcnow()
    n = cancel_batch(obj.engine, batch, now=now)
    if n:  # document.finished (cancelled) per job, and batch.finished unless a job still runs elsewhere
        emit_finished(obj.events, obj.engine, finished_at=now, batch=batch)
    click.echo(json.dumps({"batch": batch, "cancelled": n}) if as_json else f"cancelled {n} job(s) of {batch}")


@click.command("purge")
@click.option("--older-than", required=True, envvar="DOCQUEUE_PURGE_OLDER_THAN", show_envvar=True,
              help="Delete finished batches and schedule run records created longer ago than this: a duration "
                   "(30d, 12h) or an ISO date.")
@click.option("--dry-run", is_flag=True, envvar="DOCQUEUE_PURGE_DRY_RUN", show_envvar=True,
              help="Only say which batches (and how many schedule run records) would be deleted.")
@json_option()
@pass_ctx
def purge(obj: Context, older_than: str, dry_run: bool, as_json: bool) -> None:
    """Retention: delete finished batches (documents, jobs, results) and schedule run records older
    than --older-than. Batches with unfinished jobs or unfinished inbox files are kept, and so is
    each schedule's newest run."""
    before = parse_since(older_than)
    assert before is not None
    gone = purge_batches(obj.engine, before=before, dry_run=dry_run)
    runs = purge_schedule_runs(obj.engine, before=before, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"purged": 0 if dry_run else len(gone), "batches": gone, "schedule_runs": runs,
                               "dry_run": dry_run}))
    else:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {len(gone)} finished batch(es) and {runs} schedule "
                   f"run record(s) created before {before.isoformat(timespec='seconds')}")
