"""The ``docqueue`` command. Thin: options in, calls into producer modules, output out.

Every option also reads an environment variable (shown in ``--help``). The CLI never imports
torch or worker code: ``docqueue worker`` starts the worker as a separate Python process.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from docqueue import db, deadletter
from docqueue.broker import BrokerUnavailableError, check_broker, redis_client, stop_embedded_redis
from docqueue.errors import DocqueueError
from docqueue.logs import configure_json_logging, set_log_context
from docqueue.models_catalog import configured_models, local_copy_hint
from docqueue.names import TASK_TYPES, TRAIN, queue_name
from docqueue.schema import JobStatus, new_id
from docqueue.secrets import install_log_masking, mask_url
from docqueue.settings import Settings
from docqueue.webhooks import WEBHOOK_QUEUE
from producer.context import Context, err_console, json_option, pass_ctx
from producer.loaders import ReadStats, iter_documents
from producer.queries import BatchNotFoundError, batch_counts, iter_results
from producer.render import models_table, results_table, summary_table
from producer.sourceopts import SOURCE_OPTIONS, source_options, with_read_progress
from producer.submit import PublishError, SubmitReport, submit_batch
from producer.taskopts import TASK_SPECS, TaskSpec
from producer.webhook_opts import WEBHOOK_OPTIONS, webhook_options
from producer.worker_check import (
    WORKER_CHECK_OPTIONS,
    ConsumerWatch,
    check_before_submit,
    coverage_warning,
    no_worker_timeout,
)

log = logging.getLogger("docqueue.submit")


def _quiet_closed_stdout() -> None:
    """``docqueue results B | head`` closes the pipe early, which is what the user asked for, not an
    error. Output still buffered would fail again when Python flushes stdout at exit, so stdout is
    pointed at devnull (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (CliRunner): nothing left to flush
        pass
    finally:
        os.close(devnull)


class FullHelpGroup(click.Group):
    """Lists each subcommand with its whole first sentence (wrapped): Click cuts it at the terminal
    width minus the name ("The models each task is configured to use..."), dropping the part that
    says what the command is for."""

    group_class = type  # subgroups (submit, db, models) list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class DocqueueGroup(FullHelpGroup):
    """Turns docqueue's own errors into one clean line and exit code 1 (no traceback), and a reader
    that stops reading stdout into a quiet exit 0 (Click would exit 1 with no message)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
            sys.stdout.flush()  # inside the try: a pipe closed after the last write fails here
            return rv
        except DocqueueError as e:
            raise click.ClickException(str(e)) from e
        except BrokenPipeError:
            _quiet_closed_stdout()
            ctx.exit(0)


@click.group(cls=DocqueueGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--database-url", envvar="DATABASE_URL", show_envvar=True,
              help="SQLAlchemy database URL [default: sqlite:///docqueue.db].")
@click.option("--redis-url", envvar="REDIS_URL", show_envvar=True,
              help="Broker URL [default: redis://localhost:6379/0, else an embedded Redis].")
@click.option("--data-dir", envvar="DOCQUEUE_DATA_DIR", show_envvar=True, type=click.Path(path_type=Path),
              help="Local state (embedded Redis) [default: .docqueue].")
@click.version_option(package_name="docqueue")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, redis_url: str | None, data_dir: Path | None) -> None:
    """docqueue: batch document processing on Celery + Redis with resident transformer models."""
    install_log_masking()
    ctx.obj = Context(overrides={"database_url": database_url, "redis_url": redis_url, "data_dir": data_dir})
    try:
        json_logs = ctx.obj.settings.log_format == "json"
    except click.UsageError:
        json_logs = False  # invalid configuration: the command that needs settings says so
    if json_logs:
        configure_json_logging(level=logging.INFO)


# ----------------------------------------------------------------------------------------- submit
@main.group()
def submit() -> None:
    """Store documents and enqueue one job per document."""


#: Exit status of a submit the broker failed: scripts can tell "retry later" from bad input.
BROKER_EXIT = 4


def _run_submit(obj: Context, task: str, paths: tuple[str, ...], params: dict[str, Any], wait: bool,
                as_json: bool, timeout: float) -> None:
    settings, engine, app = obj.settings, obj.engine, obj.app
    load_options, force = source_options()
    webhook_url, webhook_documents = webhook_options()
    stats = ReadStats()
    try:  # before any row is written: a broker we cannot use must not leave a batch behind
        check_broker(obj.broker_url, settings)
    except BrokerUnavailableError as e:
        click.echo(f"docqueue: {e}; nothing was stored", err=True)
        sys.exit(BROKER_EXIT)
    check_before_submit(obj.broker_url, queue_name(task), err_console.print)
    if webhook_url:
        warning = coverage_warning(obj.broker_url, WEBHOOK_QUEUE)
        if warning:
            err_console.print(f"warning: {warning}; the webhook waits until a `docqueue worker --queues webhooks` "
                              "runs")
    batch_id = new_id()
    set_log_context(batch_id)  # JSON log lines of this submit carry the batch id
    if not as_json:
        click.echo(f"batch {batch_id}", err=True)
    with Progress(TextColumn("submitting"), TextColumn("{task.fields[files]} files, {task.fields[size]} read,"),
                  TextColumn("{task.completed} documents stored"), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=as_json) as bar:
        progress_task = bar.add_task("submit", total=None, files=0, size="0 bytes")

        def on_progress(r: SubmitReport) -> None:
            bar.update(progress_task, completed=r.documents)

        documents = with_read_progress(iter_documents(paths, load_options, stats), stats, bar, progress_task)
        try:
            report = submit_batch(settings=settings, engine=engine, app=app, task=task, documents=documents,
                                  params=params, on_progress=on_progress, force=force, batch_id=batch_id,
                                  chunk_size=settings.submit_chunk_size, webhook_url=webhook_url,
                                  webhook_documents=webhook_documents, events=obj.events)
        except PublishError as e:
            bar.stop()
            click.echo(
                f"docqueue: broker failed after storing {e.report.documents} documents of batch {batch_id} "
                f"({e.pending} stored but not enqueued): {e.reason}; resume with: docqueue retry {batch_id}",
                err=True)
            sys.exit(BROKER_EXIT)
    if report.documents == 0:
        raise click.UsageError(f"no documents found in {', '.join(paths)}")
    log.info("submitted batch %s (%s): %d documents in %d messages, %d unreadable, %d reused", batch_id, task,
             report.documents, report.messages, report.failed, report.reused)
    if not wait:
        if as_json:
            click.echo(json.dumps({"batch": report.batch_id, "documents": report.documents,
                                   "reused": report.reused}))
        else:
            err_console.print(f"submitted {report.documents} documents ({report.failed} unreadable, "
                              f"{report.reused} reused from earlier results) in {report.messages} messages")
            click.echo(report.batch_id)
        return
    watch = ConsumerWatch(obj.broker_url, queue_name(task), no_worker_timeout())
    counts = _wait_for(engine, report.batch_id, timeout, quiet=as_json, watch=watch)
    if as_json:
        click.echo(json.dumps({"batch": report.batch_id, "documents": report.documents, "reused": report.reused,
                               "status": counts}))
        return
    rows = list(iter_results(engine, report.batch_id))
    out = Console()
    out.print(summary_table(counts))
    out.print(results_table(rows))
    click.echo(report.batch_id)


def _wait_for(engine: Engine, batch_id: str, timeout: float, quiet: bool,
              watch: ConsumerWatch | None = None) -> dict[str, Any]:
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


_common_submit_options = [
    click.argument("paths", nargs=-1, required=True),
    click.option("--wait/--no-wait", envvar="DOCQUEUE_WAIT", show_envvar=True, default=False,
                 help="Show progress until the batch is done, then a summary."),
    click.option("--timeout", envvar="DOCQUEUE_WAIT_TIMEOUT", show_envvar=True, type=float, default=0.0,
                 help="With --wait: give up after this many seconds (0: wait forever)."),
    json_option(),
    *WORKER_CHECK_OPTIONS,  # --require-worker, --no-worker-timeout (producer/worker_check.py)
    *SOURCE_OPTIONS,  # --include/--exclude/--hidden/--text-field/--id-field/--force (producer/sourceopts.py)
    *WEBHOOK_OPTIONS,  # --webhook/--webhook-documents (producer/webhook_opts.py)
]


def _with_common(f: Any) -> Any:
    for decorator in reversed(_common_submit_options):
        f = decorator(f)
    return f


def _submit_command(spec: TaskSpec) -> click.Command:
    """``submit <task>``: the common options, then the task's own (producer/taskopts.py)."""

    def command(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                **options: Any) -> None:
        _run_submit(obj, spec.name, paths, spec.build(obj.settings, options), wait, as_json, timeout)

    command.__doc__ = spec.help
    return submit.command(spec.name)(_with_common(spec.apply(pass_ctx(command))))


for _spec in TASK_SPECS.values():
    _submit_command(_spec)


# ----------------------------------------------------------------------------------------- status
@main.command()
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


# ---------------------------------------------------------------------------------------- results
CSV_FIELDS = ("document", "document_id", "status", "task", "result", "error", "model")
CSV_EXTRA = ("metadata", "row", "id", "page_offsets", "reused_from", "correlation_id")


@main.command()
@click.argument("batch")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table", "parquet"]), default="jsonl",
              envvar="DOCQUEUE_RESULTS_FORMAT", show_envvar=True,
              help="Output format; parquet needs -o and the optional extra docqueue[parquet] (pyarrow).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), envvar="DOCQUEUE_RESULTS_OUTPUT",
              show_envvar=True, help="Write to this file instead of stdout.")
@pass_ctx
def results(obj: Context, batch: str, fmt: str, output: Path | None) -> None:
    """Every document's outcome: result, or the specific error."""
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a binary file: name it with -o FILE")
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


# ----------------------------------------------------------------------------------------- worker
@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", envvar="DOCQUEUE_QUEUES", show_envvar=True, default=",".join(TASK_TYPES),
              help="Comma-separated queues to consume: task queues, 'train' (`docqueue train` jobs; not in the "
              "default: a training job holds a process for minutes) and 'webhooks' (webhook deliveries; no "
              "model is loaded for it, and it is not in the default so model workers never POST).")
@click.option("--concurrency", "-c", envvar="DOCQUEUE_CONCURRENCY", show_envvar=True, type=int, default=0,
              help="Worker processes, each with its own resident model; 0: one single-threaded process per "
              "core on the CPU (the fastest there), one on a GPU.")
@click.option("--device", envvar="DOCQUEUE_DEVICE", show_envvar=True, default=None,
              help="auto | cpu | cuda | cuda:N [default: DOCQUEUE_DEVICE or auto].")
@click.option("--pool", envvar="DOCQUEUE_POOL", show_envvar=True, type=click.Choice(["prefork", "solo"]),
              default="prefork", help="prefork: models load in children after the fork; solo: one process.")
@click.option("--loglevel", "-l", envvar="DOCQUEUE_LOGLEVEL", show_envvar=True, default="info",
              help="Celery log level.")
@click.option("--metrics-port", envvar="DOCQUEUE_METRICS_PORT", show_envvar=True, type=click.IntRange(1, 65535),
              default=None, help="Serve Prometheus metrics on this port (/metrics) [default: no metrics server].")
@click.option("--uid", envvar="DOCQUEUE_WORKER_UID", show_envvar=True, default=None,
              help="Started as root: drop to this user once started (Celery's --uid; root draws a SecurityWarning).")
@click.option("--gid", envvar="DOCQUEUE_WORKER_GID", show_envvar=True, default=None, help="With --uid: this group.")
@click.option("--check", is_flag=True, envvar="DOCQUEUE_WORKER_CHECK", show_envvar=True,
              help="Start nothing: exit 0 when a worker on this host is alive and consuming (each of --queues, "
              "when given), else 1 (2: Redis unreachable) with one line why. The container healthcheck.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def worker(obj: Context, queues: str, concurrency: int, device: str | None, pool: str, loglevel: str,
           metrics_port: int | None, uid: str | None, gid: str | None, check: bool,
           celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker whose models load once and stay resident.

    Extra arguments after `--` go to `celery worker` as they are (e.g. `-- --max-tasks-per-child 100`).
    """
    if check:
        from producer.health import check_local_worker

        ctx = click.get_current_context()
        given = ctx.get_parameter_source("queues") != click.core.ParameterSource.DEFAULT
        ctx.exit(check_local_worker(obj.settings, [q.strip() for q in queues.split(",") if q.strip()]
                                    if given else None))
    known = (*TASK_TYPES, TRAIN, WEBHOOK_QUEUE)
    unknown = sorted(set(q.strip() for q in queues.split(",")) - set(known))
    if unknown:
        raise click.UsageError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(known)}")
    env = dict(os.environ)
    env["REDIS_URL"] = obj.broker_url
    env["DATABASE_URL"] = obj.settings.database_url
    env["DOCQUEUE_DATA_DIR"] = str(obj.settings.data_dir)
    if device:
        env["DOCQUEUE_DEVICE"] = device
    obj.engine  # noqa: B018  (fail here, before forking, when the schema is missing)
    own = [*(["--metrics-port", str(metrics_port)] if metrics_port else []), *(["--uid", uid] if uid else []),
           *(["--gid", gid] if gid else [])]
    argv = [sys.executable, "-m", "workers", "--queues", queues, "--concurrency", str(concurrency),
            "--pool", pool, "--loglevel", loglevel, *own, *celery_args]
    os.execvpe(sys.executable, argv, env)


# ----------------------------------------------------------------------------------------- models
@main.group("models")
def models_group() -> None:
    """The models each task is configured to use (DOCQUEUE_<TASK>_MODEL; translate: DOCQUEUE_TRANSLATE_MODELS)."""


@models_group.command("list")
@json_option("Machine-readable output on stdout (one object per line).")
@pass_ctx
def models_list(obj: Context, as_json: bool) -> None:
    """Each task's configured model(s): available on this machine?, size on disk, which engine runs;
    then the models `docqueue train` wrote into the model store (DOCQUEUE_MODEL_STORE)."""
    rows = configured_models(obj.settings)
    if as_json:
        for r in rows:
            click.echo(json.dumps({"task": r.task, "engine": r.engine, "default": r.default, "pair": r.pair,
                                   "model": r.spec, "revision": r.revision, "available": r.location.available,
                                   "size_bytes": r.location.size_bytes, "path": r.location.path}))
    else:
        Console().print(models_table(rows))
    show_store(obj, as_json)


@models_group.command("pull")
@click.argument("name")
@click.option("--revision", envvar="DOCQUEUE_PULL_REVISION", show_envvar=True, default=None,
              help="Branch, tag or commit to fetch [default: main].")
@pass_ctx
def models_pull(obj: Context, name: str, revision: str | None) -> None:
    """Download a model from the Hugging Face hub into the HF cache (HF_HOME), where a hub is reachable."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id=name, revision=revision)
    except Exception as e:
        first = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") else ""
        try:
            settings: Settings | None = obj.settings
        except click.UsageError:  # a broken configuration must not hide the download error
            settings = None
        raise click.ClickException(f"cannot download {name!r} from the Hugging Face hub{offline}: {first}. "
                                   f"On a machine without a hub, copy a saved model folder here and "
                                   f"{local_copy_hint(settings, name)}.") from e
    click.echo(path)


# --------------------------------------------------------------------------------------------- db
@main.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("upgrade")
@click.option("--revision", default="head", envvar="DOCQUEUE_DB_REVISION", show_envvar=True,
              help="Target revision (e.g. 0002 to stay on an older schema).")
@pass_ctx
def db_upgrade(obj: Context, revision: str) -> None:
    """Create or migrate the schema (Alembic)."""
    db.upgrade(obj.settings.database_url, revision)
    click.echo(f"database at revision {db.current_revision(db.get_engine(obj.settings.database_url))}")


# ----------------------------------------------------------------------------------------- broker
@main.group("broker")
def broker_group() -> None:
    """The broker docqueue would use (and the embedded one)."""


@broker_group.command("url")
@pass_ctx
def broker_url(obj: Context) -> None:
    """Print the broker URL (password masked), starting the embedded Redis if that is what would be used."""
    click.echo(mask_url(obj.broker_url))


@broker_group.command("stop")
@pass_ctx
def broker_stop(obj: Context) -> None:
    """Stop the embedded Redis of this data directory (queued messages persist on disk)."""
    stopped = stop_embedded_redis(obj.settings.data_dir)
    click.echo("embedded redis stopped" if stopped else "no embedded redis running")


# ------------------------------------------------------------------------- command groups (modules)
from producer.commands.batches import batches, cancel, purge  # noqa: E402
from producer.commands.dlq import dlq_group  # noqa: E402
from producer.commands.events import events  # noqa: E402
from producer.commands.metrics import metrics_group  # noqa: E402
from producer.commands.retry import retry  # noqa: E402
from producer.commands.schedule import beat, schedule_group, watch  # noqa: E402
from producer.commands.top import top  # noqa: E402
from producer.commands.train import show_store, train_group  # noqa: E402
from producer.commands.workers import workers  # noqa: E402

for command in (dlq_group, batches, cancel, purge, retry, workers, events, schedule_group, beat, watch, train_group,
                metrics_group, top):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
