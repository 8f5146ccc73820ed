"""``docqueue submit TASK PATHS...``: read, store and enqueue documents, optionally wait for them.

The submission itself is ``producer.submission`` (shared with schedules and ``watch``); this module
is the command line around it: options in, progress and one-line errors out, and an exit status a
script can act on (``producer.submission``'s ``EXIT_*``, documented in docs/operations/cli-behaviour.md).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from docqueue.logs import set_log_context
from docqueue.names import queue_name
from docqueue.schema import new_id
from docqueue.webhooks import WEBHOOK_QUEUE
from producer.context import Context, FullHelpGroup, err_console, json_option, pass_ctx
from producer.loaders import LoadedDocument, ReadStats, iter_task_documents
from producer.queries import batch_counts, iter_results
from producer.render import plural, results_table, summary_table
from producer.sourceopts import SOURCE_OPTIONS, pop_source_options, with_read_progress
from producer.submission import (
    EXIT_ALL_FAILED,
    EXIT_SOME_FAILED,
    SubmissionFailed,
    SubmitReport,
    SubmitRequest,
    ensure_broker,
    submit_documents,
)
from producer.taskopts import TASK_SPECS, TaskSpec
from producer.webhook_opts import WEBHOOK_OPTIONS, pop_webhook_options
from producer.worker_check import (
    WORKER_CHECK_OPTIONS,
    ConsumerWatch,
    check_before_submit,
    coverage_warning,
    pop_worker_check,
)

log = logging.getLogger("docqueue.submit")


@click.group(cls=FullHelpGroup)
def submit() -> None:
    """Store documents and enqueue one job per document."""


def _fail(e: SubmissionFailed) -> None:
    click.echo(f"docqueue: {e}", err=True)
    sys.exit(e.exit_code)


def _announced(documents: Iterable[LoadedDocument], batch_id: str, quiet: bool) -> Iterator[LoadedDocument]:
    """``documents`` unchanged; the batch id is said once the first one is read: an input with no
    document names no batch (none is stored)."""
    for n, doc in enumerate(documents):
        if n == 0 and not quiet:
            click.echo(f"batch {batch_id}", err=True)
        yield doc


def run_submit(obj: Context, spec: TaskSpec, paths: tuple[str, ...], wait: bool, as_json: bool, timeout: float,
               options: dict[str, Any]) -> None:
    """One ``submit TASK``: every option arrives in ``options`` and is taken out explicitly."""
    load_options, force = pop_source_options(options)
    webhook_url, webhook_documents = pop_webhook_options(options)
    check = pop_worker_check(options)
    settings, task = obj.settings, spec.name
    params = spec.build(settings, options)
    try:  # before any row is written: a broker we cannot use must not leave a batch behind
        ensure_broker(obj.broker_url, settings)
    except SubmissionFailed as e:
        _fail(e)
    check_before_submit(obj.broker_url, queue_name(task), err_console.print, require_worker=check.require_worker,
                        database_url=settings.database_url)
    if webhook_url and (warning := coverage_warning(obj.broker_url, WEBHOOK_QUEUE)):
        err_console.print(f"warning: {warning}; the webhook waits until a `docqueue worker --queues webhooks` runs")
    request = SubmitRequest(task=task, params=params, batch_id=new_id(), force=force, webhook_url=webhook_url,
                            webhook_documents=webhook_documents)
    set_log_context(request.batch_id)  # JSON log lines of this submit carry the batch id
    stats = ReadStats()
    with Progress(TextColumn("submitting"), TextColumn("{task.fields[files]} files, {task.fields[size]} read,"),
                  TextColumn("{task.completed} documents stored"), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=as_json) as bar:
        progress_task = bar.add_task("submit", total=None, files=0, size="0 bytes")

        def on_progress(r: SubmitReport) -> None:
            bar.update(progress_task, completed=r.documents)

        documents = _announced(with_read_progress(iter_task_documents(task, paths, load_options, stats), stats, bar,
                                                  progress_task), request.batch_id, as_json)
        try:
            report = submit_documents(request, documents, settings=settings, engine=obj.engine, app=obj.app,
                                      broker_url=obj.broker_url, events=obj.events, on_progress=on_progress)
        except SubmissionFailed as e:
            bar.stop()
            _fail(e)
    if report.documents == 0:
        raise click.UsageError(f"no documents found in {', '.join(paths)} (nothing was stored)")
    log.info("submitted batch %s (%s): %d documents in %d messages, %d unreadable, %d reused", report.batch_id,
             task, report.documents, report.messages, report.failed, report.reused)
    if not wait:
        _report_submitted(report, as_json)
        if report.failed == report.documents:
            err_console.print(f"none of the {report.documents} document(s) given could be read "
                              f"(`docqueue results {report.batch_id}` says why)")
            sys.exit(EXIT_ALL_FAILED)
        return
    watch = ConsumerWatch(obj.broker_url, queue_name(task), check.no_worker_timeout, batch=report.batch_id)
    counts = wait_for(obj.engine, report.batch_id, timeout, quiet=as_json, watch=watch)
    if as_json:
        click.echo(json.dumps({"batch": report.batch_id, "documents": report.documents, "reused": report.reused,
                               "status": counts}))
    else:
        out = Console()
        out.print(summary_table(counts))
        out.print(results_table(list(iter_results(obj.engine, report.batch_id))))
        click.echo(report.batch_id)
    if counts["failed"]:
        sys.exit(EXIT_SOME_FAILED if counts["succeeded"] else EXIT_ALL_FAILED)


def _report_submitted(report: SubmitReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"batch": report.batch_id, "documents": report.documents, "reused": report.reused}))
        return
    err_console.print(f"submitted {plural(report.documents, 'document')} ({report.failed} unreadable, "
                      f"{report.reused} reused from earlier results) in {plural(report.messages, 'message')}")
    click.echo(report.batch_id)


def wait_for(engine: Engine, batch_id: str, timeout: float, quiet: bool,
             watch: ConsumerWatch | None = None) -> dict[str, Any]:
    """Progress until every document of the batch is finished; its counts per state."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  console=err_console, disable=quiet) as bar:
        counts = batch_counts(engine, batch_id)
        progress_task = bar.add_task("processing", total=counts["total"], detail="")
        while True:
            counts = batch_counts(engine, batch_id)
            done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            bar.update(progress_task, completed=done,
                       detail=f"{counts['running']} running, {counts['failed']} failed")
            if done >= counts["total"]:
                return counts
            if deadline is not None and time.monotonic() > deadline:
                raise click.ClickException(
                    f"timed out after {timeout:g}s with {counts['total'] - done} documents unfinished "
                    f"(`docqueue status {batch_id}` to check later)")
            if watch is not None:
                watch.check()
            time.sleep(0.3)


_COMMON_OPTIONS = [
    click.argument("paths", nargs=-1, required=True),
    click.option("--wait/--no-wait", envvar="DOCQUEUE_WAIT", show_envvar=True, default=False,
                 help="Show progress until the batch is done, then a summary; exit 1 when every document "
                 "failed, 5 when some did."),
    click.option("--timeout", envvar="DOCQUEUE_WAIT_TIMEOUT", show_envvar=True, type=float, default=0.0,
                 help="With --wait: give up after this many seconds (0: wait forever)."),
    json_option(),
    *WORKER_CHECK_OPTIONS,  # --require-worker, --no-worker-timeout (producer/worker_check.py)
    *SOURCE_OPTIONS,  # --include/--exclude/--hidden/--text-field/--id-field/--force (producer/sourceopts.py)
    *WEBHOOK_OPTIONS,  # --webhook/--webhook-documents (producer/webhook_opts.py)
]


def _with_common(f: Any) -> Any:
    for decorator in reversed(_COMMON_OPTIONS):
        f = decorator(f)
    return f


def _submit_command(spec: TaskSpec) -> click.Command:
    """``submit <task>``: the common options, then the task's own (producer/taskopts.py)."""

    def command(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                **options: Any) -> None:
        run_submit(obj, spec, paths, wait, as_json, timeout, options)

    command.__doc__ = spec.help
    return submit.command(spec.name)(_with_common(spec.apply(pass_ctx(command))))


for _spec in TASK_SPECS.values():
    _submit_command(_spec)
