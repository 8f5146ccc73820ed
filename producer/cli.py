"""The ``docqueue`` command. Thin: options in, calls into producer modules, output out.

Every option also reads an environment variable (shown in ``--help``). The CLI never imports
torch or worker code: ``docqueue worker`` starts the worker as a separate Python process.
"""

from __future__ import annotations

import csv
import json
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
from docqueue.contract_categories import canonical_category
from docqueue.errors import DocqueueError
from docqueue.models_catalog import configured_models, local_copy_hint
from docqueue.names import CLASSIFY, REVIEW, SUMMARIZE, TASK_TYPES, TRANSLATE, queue_name
from docqueue.schema import JobStatus, new_id
from docqueue.secrets import install_log_masking, mask_url
from docqueue.settings import Settings
from producer.classify_options import classify_params
from producer.context import Context, err_console, pass_ctx
from producer.loaders import ReadStats, iter_documents
from producer.queries import BatchNotFoundError, batch_counts, iter_results
from producer.render import models_table, results_table, summary_table
from producer.sourceopts import SOURCE_OPTIONS, source_options, with_read_progress
from producer.submit import PublishError, SubmitReport, submit_batch
from producer.worker_check import WORKER_CHECK_OPTIONS, ConsumerWatch, check_before_submit, no_worker_timeout


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
    stats = ReadStats()
    try:  # before any row is written: a broker we cannot use must not leave a batch behind
        check_broker(obj.broker_url, settings)
    except BrokerUnavailableError as e:
        click.echo(f"docqueue: {e}; nothing was stored", err=True)
        sys.exit(BROKER_EXIT)
    check_before_submit(obj.broker_url, queue_name(task), err_console.print)
    batch_id = new_id()
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
                                  chunk_size=settings.submit_chunk_size)
        except PublishError as e:
            bar.stop()
            click.echo(
                f"docqueue: broker failed after storing {e.report.documents} documents of batch {batch_id} "
                f"({e.pending} stored but not enqueued): {e.reason}; resume with: docqueue retry {batch_id}",
                err=True)
            sys.exit(BROKER_EXIT)
    if report.documents == 0:
        raise click.UsageError(f"no documents found in {', '.join(paths)}")
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
    click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True,
                 help="Machine-readable output on stdout."),
    *WORKER_CHECK_OPTIONS,  # --require-worker, --no-worker-timeout (producer/worker_check.py)
    *SOURCE_OPTIONS,  # --include/--exclude/--hidden/--text-field/--id-field/--force (producer/sourceopts.py)
]


def _with_common(f: Any) -> Any:
    for decorator in reversed(_common_submit_options):
        f = decorator(f)
    return f


@submit.command("classify")
@_with_common
@click.option("--labels", envvar="DOCQUEUE_LABELS", show_envvar=True,
              help="Comma-separated candidate labels, e.g. 'contract,invoice,news,email'.")
@click.option("--labels-file", envvar="DOCQUEUE_LABELS_FILE", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels with descriptions: JSON {label: description} or lines 'label: description'.")
@click.option("--examples", "examples_file", envvar="DOCQUEUE_EXAMPLES", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Few-shot: JSONL of labelled examples {"text": ..., "label": ...} that steer the embedding '
                   "engine (no training). Without --labels, their labels are the label set.")
@click.option("--engine", type=click.Choice(["auto", "embedding", "nli", "fine-tuned"]), default="auto",
              envvar="DOCQUEUE_CLASSIFY_ENGINE", show_envvar=True,
              help="auto: what the model is (sentence encoder -> embedding, entailment head -> nli, other "
                   "classification head -> fine-tuned). nli without --model uses DOCQUEUE_CLASSIFY_NLI_MODEL.")
@click.option("--model", envvar="DOCQUEUE_SUBMIT_MODEL", show_envvar=True,
              help="Model for this submission (HF id in the HF cache, or local path) [default: the worker's "
                   "DOCQUEUE_CLASSIFY_MODEL].")
@click.option("--model-revision", envvar="DOCQUEUE_SUBMIT_MODEL_REVISION", show_envvar=True,
              help="Revision (branch, tag or commit) of --model.")
@click.option("--multi-label", is_flag=True, envvar="DOCQUEUE_MULTI_LABEL", show_envvar=True,
              help="Each label judged on its own: 'labels' lists every label scoring at least --threshold.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), envvar="DOCQUEUE_THRESHOLD", show_envvar=True,
              default=None, help="With --multi-label: the score a label needs to be listed [default: 0.5].")
@click.option("--template", envvar="DOCQUEUE_TEMPLATE", show_envvar=True,
              help="Hypothesis for each label, {} marks the label [default: 'Type of document: {}.'; "
                   "nli: 'This example is {}.'].")
@pass_ctx
def submit_classify(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                    labels: str | None, labels_file: Path | None, examples_file: Path | None, engine: str,
                    model: str | None, model_revision: str | None, multi_label: bool, threshold: float | None,
                    template: str | None) -> None:
    """Classify files, folders (recursive) and globs: zero-shot over your labels, few-shot with your
    examples, or with a fine-tuned classifier's own labels."""
    params = classify_params(labels=labels, labels_file=labels_file, examples_file=examples_file, engine=engine,
                             model=model, model_revision=model_revision, multi_label=multi_label,
                             threshold=threshold, template=template,
                             nli_model=obj.settings.classify_nli_model,
                             max_examples=obj.settings.classify_max_examples,
                             max_labels=obj.settings.classify_max_labels)
    _run_submit(obj, CLASSIFY, paths, params, wait, as_json, timeout)


_model_options = [
    click.option("--model", envvar="DOCQUEUE_SUBMIT_MODEL", show_envvar=True, default=None,
                 help="Model for this batch (HF id in the worker's HF cache, or a path on the worker) "
                      "[default: the worker's configured model]."),
    click.option("--model-revision", envvar="DOCQUEUE_SUBMIT_MODEL_REVISION", show_envvar=True, default=None,
                 help="Revision (branch, tag or commit) of --model."),
]


def _with_model(f: Any) -> Any:
    for decorator in reversed(_model_options):
        f = decorator(f)
    return f


def _model_params(model: str | None, model_revision: str | None) -> dict[str, Any]:
    if model_revision and not model:
        raise click.UsageError("--model-revision needs --model")
    return {k: v for k, v in (("model", model), ("model_revision", model_revision)) if v}


def _language_code(value: str | None, name: str, allow_auto: bool = False) -> str | None:
    if value is None:
        return None
    code = value.strip().lower()
    if (allow_auto and code == "auto") or (len(code) == 2 and code.isalpha() and code.isascii()):
        return code
    raise click.BadParameter(f"{value!r} is not an ISO 639-1 code (two letters, e.g. en, de)"
                             + (" or 'auto'" if allow_auto else ""), param_hint=name)


@submit.command("summarize")
@_with_common
@_with_model
@click.option("--engine", type=click.Choice(["extractive", "abstractive"]), default=None,
              envvar="DOCQUEUE_SUMMARIZE_ENGINE", show_envvar=True,
              help="extractive: the document's key sentences, offline on MiniLM; abstractive: a seq2seq model "
                   "writes the summary (needs DOCQUEUE_SUMMARIZE_MODEL on the worker) [default: extractive].")
@click.option("--sentences", type=click.IntRange(1, 100), default=3, envvar="DOCQUEUE_SUMMARIZE_SENTENCES",
              show_envvar=True, help="Extractive: sentences in the summary.")
@click.option("--beams", type=click.IntRange(1, 16), default=None, envvar="DOCQUEUE_SUMMARIZE_BEAMS",
              show_envvar=True, help="Abstractive: beam search width [default: the model's].")
@click.option("--max-length", type=click.IntRange(4, 2048), default=None, envvar="DOCQUEUE_SUMMARIZE_MAX_LENGTH",
              show_envvar=True, help="Abstractive: most tokens in the summary [default: the model's].")
@click.option("--min-length", type=click.IntRange(0, 2048), default=None, envvar="DOCQUEUE_SUMMARIZE_MIN_LENGTH",
              show_envvar=True, help="Abstractive: fewest tokens in the summary [default: the model's].")
@click.option("--length-penalty", type=float, default=None, envvar="DOCQUEUE_SUMMARIZE_LENGTH_PENALTY",
              show_envvar=True, help="Abstractive: >1 favours longer summaries, <1 shorter [default: the model's].")
@click.option("--language", default="en", envvar="DOCQUEUE_SUMMARIZE_LANGUAGE", show_envvar=True,
              help="Language of the documents (ISO 639-1), for finding sentence boundaries.")
@pass_ctx
def submit_summarize(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                     model: str | None, model_revision: str | None, engine: str | None, sentences: int,
                     beams: int | None, max_length: int | None, min_length: int | None,
                     length_penalty: float | None, language: str) -> None:
    """Summarise files, folders and globs; long documents are summarised chunk by chunk, then the
    chunk summaries again (map-reduce)."""
    params: dict[str, Any] = {"engine": engine or obj.settings.summarize_engine,
                              "language": _language_code(language, "--language")}
    if params["engine"] == "extractive":
        params["sentences"] = sentences
    else:
        options = {"num_beams": beams, "max_length": max_length, "min_length": min_length,
                   "length_penalty": length_penalty}
        params.update({k: v for k, v in options.items() if v is not None})
    params.update(_model_params(model, model_revision))
    _run_submit(obj, SUMMARIZE, paths, params, wait, as_json, timeout)


@submit.command("translate")
@_with_common
@_with_model
@click.option("--to", "target", required=True, envvar="DOCQUEUE_TRANSLATE_TO", show_envvar=True,
              help="Target language, ISO 639-1 (e.g. de).")
@click.option("--from", "source", default="auto", envvar="DOCQUEUE_TRANSLATE_FROM", show_envvar=True,
              help="Source language, ISO 639-1, or 'auto' to detect it per document on the worker.")
@click.option("--beams", type=click.IntRange(1, 16), default=None, envvar="DOCQUEUE_TRANSLATE_BEAMS",
              show_envvar=True, help="Beam search width [default: the model's].")
@pass_ctx
def submit_translate(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                     model: str | None, model_revision: str | None, target: str, source: str,
                     beams: int | None) -> None:
    """Translate files, folders and globs, keeping paragraphs; the model is chosen per language pair
    (DOCQUEUE_TRANSLATE_MODELS on the worker) unless --model names one."""
    params: dict[str, Any] = {"to": _language_code(target, "--to"),
                              "from": _language_code(source, "--from", allow_auto=True)}
    if beams is not None:
        params["num_beams"] = beams
    params.update(_model_params(model, model_revision))
    _run_submit(obj, TRANSLATE, paths, params, wait, as_json, timeout)


def _parse_categories(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if canonical_category(n) is None]
    if unknown:
        raise click.BadParameter(f"not CUAD categories: {', '.join(unknown)} (see README, review)",
                                 param_hint="--categories")
    return list(dict.fromkeys(str(canonical_category(n)) for n in names))


@submit.command("review")
@_with_common
@_with_model
@click.option("--categories", envvar="DOCQUEUE_REVIEW_CATEGORIES", show_envvar=True,
              help="Comma-separated CUAD categories to report clauses for, e.g. 'Governing Law,Cap on Liability' "
                   "[default: all 41]; fields and risks always use every category.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None, envvar="DOCQUEUE_REVIEW_MIN_SCORE",
              show_envvar=True, help="Report clauses scoring at least this instead of the calibrated "
                                     "per-category thresholds (lower: more recall, less precision).")
@pass_ctx
def submit_review(obj: Context, paths: tuple[str, ...], wait: bool, timeout: float, as_json: bool,
                  model: str | None, model_revision: str | None, categories: str | None,
                  min_score: float | None) -> None:
    """Review contracts: clauses in the 41 CUAD categories with character offsets, key fields (parties,
    dates, governing law, renewal) and risk flags."""
    params: dict[str, Any] = {}
    wanted = _parse_categories(categories)
    if wanted:
        params["categories"] = wanted
    if min_score is not None:
        params["min_score"] = min_score
    params.update(_model_params(model, model_revision))
    _run_submit(obj, REVIEW, paths, params, wait, as_json, timeout)


# ----------------------------------------------------------------------------------------- status
@main.command()
@click.argument("batch")
@click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True,
              help="Machine-readable output on stdout.")
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


@main.command()
@click.argument("batch")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table"]), default="jsonl",
              envvar="DOCQUEUE_RESULTS_FORMAT", show_envvar=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), envvar="DOCQUEUE_RESULTS_OUTPUT",
              show_envvar=True, help="Write to this file instead of stdout.")
@pass_ctx
def results(obj: Context, batch: str, fmt: str, output: Path | None) -> None:
    """Every document's outcome: result, or the specific error."""
    rows = iter_results(obj.engine, batch)
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
            writer = csv.DictWriter(stream, fieldnames=[*CSV_FIELDS, "metadata", "row", "id", "page_offsets",
                                                        "reused_from"], extrasaction="ignore")
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
              help="Comma-separated task queues to consume.")
@click.option("--concurrency", "-c", envvar="DOCQUEUE_CONCURRENCY", show_envvar=True, type=int, default=0,
              help="Worker processes, each with its own resident model; 0: one single-threaded process per "
              "core on the CPU (the fastest there), one on a GPU.")
@click.option("--device", envvar="DOCQUEUE_DEVICE", show_envvar=True, default=None,
              help="auto | cpu | cuda | cuda:N [default: DOCQUEUE_DEVICE or auto].")
@click.option("--pool", envvar="DOCQUEUE_POOL", show_envvar=True, type=click.Choice(["prefork", "solo"]),
              default="prefork", help="prefork: models load in children after the fork; solo: one process.")
@click.option("--loglevel", "-l", envvar="DOCQUEUE_LOGLEVEL", show_envvar=True, default="info",
              help="Celery log level.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def worker(obj: Context, queues: str, concurrency: int, device: str | None, pool: str, loglevel: str,
           celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker whose models load once and stay resident.

    Extra arguments after `--` go to `celery worker` as they are (e.g. `-- --max-tasks-per-child 100`).
    """
    unknown = sorted(set(q.strip() for q in queues.split(",")) - set(TASK_TYPES))
    if unknown:
        raise click.UsageError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(TASK_TYPES)}")
    env = dict(os.environ)
    env["REDIS_URL"] = obj.broker_url
    env["DATABASE_URL"] = obj.settings.database_url
    env["DOCQUEUE_DATA_DIR"] = str(obj.settings.data_dir)
    if device:
        env["DOCQUEUE_DEVICE"] = device
    obj.engine  # noqa: B018  (fail here, before forking, when the schema is missing)
    argv = [sys.executable, "-m", "workers", "--queues", queues, "--concurrency", str(concurrency),
            "--pool", pool, "--loglevel", loglevel, *celery_args]
    os.execvpe(sys.executable, argv, env)


# ----------------------------------------------------------------------------------------- models
@main.group("models")
def models_group() -> None:
    """The models each task is configured to use (DOCQUEUE_<TASK>_MODEL; translate: DOCQUEUE_TRANSLATE_MODELS)."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True,
              help="Machine-readable output on stdout (one object per line).")
@pass_ctx
def models_list(obj: Context, as_json: bool) -> None:
    """Each task's configured model(s): available on this machine?, size on disk, which engine runs."""
    rows = configured_models(obj.settings)
    if as_json:
        for r in rows:
            click.echo(json.dumps({"task": r.task, "engine": r.engine, "default": r.default, "pair": r.pair,
                                   "model": r.spec, "revision": r.revision, "available": r.location.available,
                                   "size_bytes": r.location.size_bytes, "path": r.location.path}))
        return
    Console().print(models_table(rows))


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
from producer.commands.retry import retry  # noqa: E402
from producer.commands.workers import workers  # noqa: E402

for command in (dlq_group, batches, cancel, purge, retry, workers):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
