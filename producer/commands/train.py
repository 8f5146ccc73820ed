"""``docqueue train classify NAME --examples FILE``: learn a classifier from labelled examples.

The examples are read and checked here (a bad line is reported before anything is queued), stored
as the one document of a one-job ``train`` batch, and a ``jobs`` message goes to the ``train`` queue:
the examples travel by reference, because a realistic training set (thousands of contract clauses)
is megabytes and every broker message must stay far below Redis' and kombu's limits. A worker
started with ``--queues train`` trains it and publishes ``NAME@VERSION`` into the model store, which
``docqueue models list`` shows and ``submit classify --model NAME[@VERSION]`` uses.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from docqueue import model_store, train_examples
from docqueue.models import Job
from docqueue.names import TRAIN
from docqueue.schema import JobStatus
from docqueue.settings import model_store_dir
from producer.context import Context, json_option, pass_ctx
from producer.loaders import LoadedDocument
from producer.submit import PublishError, submit_batch


def _opt(name: str, env: str, help: str, **kw: Any) -> Any:
    return click.option(name, envvar=f"DOCQUEUE_TRAIN_{env}", show_envvar=True, help=help, **kw)


@click.group("train")
def train_group() -> None:
    """Learn a model from your labelled examples, as a job on the train queue (a worker started with
    `docqueue worker --queues train` runs it)."""


@train_group.command("classify")
@click.argument("name")
@_opt("--examples", "EXAMPLES", "JSONL (one object per line) or .csv with a text and a label column.",
      required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_opt("--text-field", "TEXT_FIELD", "Field (column) holding the text.", default="text", show_default=True)
@_opt("--label-field", "LABEL_FIELD", "Field (column) holding the one label of a single-label example.",
      default="label", show_default=True)
@_opt("--labels-field", "LABELS_FIELD", "Multi-label: the field holding each example's list of labels (a CSV "
      "cell separates them with ';'); an empty list means none applies.", default=None)
@_opt("--base", "BASE", "Sentence encoder to fine-tune [default: DOCQUEUE_CLASSIFY_MODEL, the shipped MiniLM].",
      default=None)
@_opt("--base-revision", "BASE_REVISION", "Revision of --base (a hub model).", default=None)
@_opt("--epochs", "EPOCHS", "Passes over freshly sampled example pairs.", type=click.IntRange(1, 100), default=1,
      show_default=True)
@_opt("--iterations", "ITERATIONS", "Pairs per example and epoch: 2 x this (SetFit's num_iterations); 0 skips "
      "the pair phase.", type=click.IntRange(0, 100), default=2, show_default=True)
@_opt("--end-to-end-epochs", "END_TO_END_EPOCHS", "Passes over the examples training the encoder and the head "
      "together on the labels, after the head's first fit (SetFit's second phase); 0 skips it.",
      type=click.IntRange(0, 100), default=3, show_default=True)
@_opt("--batch-size", "BATCH_SIZE", "Pairs (end to end: examples) per training step.", type=click.IntRange(2, 1024),
      default=16, show_default=True)
@_opt("--learning-rate", "LEARNING_RATE", "AdamW learning rate of the encoder.",
      type=click.FloatRange(0, 1, min_open=True, max_open=True), default=5e-5, show_default=True)
@_opt("--max-tokens", "MAX_TOKENS", "Tokens of each example the pair training reads.",
      type=click.IntRange(8, 512), default=128, show_default=True)
@_opt("--holdout", "HOLDOUT", "Share of each label's examples kept apart to measure the model (its card's "
      "metrics).", type=click.FloatRange(0, 0.9, max_open=True), default=0.2, show_default=True)
@_opt("--threshold", "THRESHOLD", "Multi-label: one score at which every label applies [default: one per label, "
      "chosen on a quarter of the training examples kept out of training].",
      type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None)
@_opt("--label-names/--no-label-names", "LABEL_NAMES", "Each label's name is also one training example of it "
      "(helps labels with few examples; a label with none is learned from its name alone).", default=True,
      show_default=True)
@_opt("--labels", "LABELS", "Comma-separated labels the model should know besides those of the examples: each is "
      "learned from its name alone (needs --label-names).", default=None)
@_opt("--seed", "SEED", "Seed of the split and the pair sampling.", type=int, default=0, show_default=True)
@_opt("--wait", "WAIT", "Wait for the job, printing its progress, and exit 1 if it failed.", is_flag=True)
@_opt("--timeout", "TIMEOUT", "With --wait: give up waiting after this many seconds (the job goes on).",
      type=click.FloatRange(0, min_open=True), default=6 * 3600.0, show_default=True)
@json_option("Machine-readable output on stdout: the batch and job, and with --wait the job's outcome.")
@pass_ctx
def train_classify(obj: Context, name: str, examples: Path, text_field: str, label_field: str,
                   labels_field: str | None, base: str | None, base_revision: str | None, epochs: int,
                   iterations: int, end_to_end_epochs: int, batch_size: int, learning_rate: float, max_tokens: int,
                   holdout: float, threshold: float | None, label_names: bool, labels: str | None, seed: int,
                   wait: bool, timeout: float, as_json: bool) -> None:
    """Fine-tune a sentence encoder and a classification head on labelled examples (SetFit-style)
    into the model store as NAME@VERSION."""
    try:
        model_store.check_name(name)
        rows = train_examples.read(examples, text_field=text_field, label_field=label_field,
                                   labels_field=labels_field)
    except (model_store.StoreError, train_examples.ExamplesError) as e:
        raise click.UsageError(str(e)) from e
    extra = list(dict.fromkeys(x.strip() for x in labels.split(",") if x.strip())) if labels else []
    if extra and not label_names:
        raise click.UsageError("--labels needs --label-names: a label without examples is learned from its name alone")
    data = train_examples.canonical(rows)
    params: dict[str, Any] = {
        "kind": "classify", "name": name, "base": base or obj.settings.classify_model, "epochs": epochs,
        "iterations": iterations, "end_to_end_epochs": end_to_end_epochs, "batch_size": batch_size,
        "learning_rate": learning_rate, "max_tokens": max_tokens, "holdout": holdout, "seed": seed,
        "multi_label": labels_field is not None, "threshold": threshold, "label_names": label_names}
    if extra:
        params["labels"] = extra
    if base_revision:
        params["base_revision"] = base_revision
    doc = LoadedDocument(source=str(examples), text=data, sha256=train_examples.sha256(data),
                         meta={"examples": len(rows)})
    try:
        report = submit_batch(settings=obj.settings, engine=obj.engine, app=obj.app, task=TRAIN, documents=[doc],
                              params=params, force=True, events=obj.events)
    except PublishError as e:
        raise click.ClickException(f"stored training batch {e.report.batch_id} but could not queue it: {e.reason}; "
                                   f"`docqueue retry {e.report.batch_id}` sends it") from e
    with Session(obj.engine) as session:
        job = session.exec(select(Job).where(Job.batch_id == report.batch_id)).one()
    head = {"batch": report.batch_id, "job": job.id, "name": name, "examples": len(rows)}
    if not wait:
        click.echo(json.dumps(head) if as_json else
                   f"queued training of {name} on {len(rows)} examples: batch {report.batch_id} "
                   f"(docqueue status {report.batch_id}; a worker must consume the train queue)")
        return
    final = _wait(obj, job.id, timeout, quiet=as_json)
    if as_json:
        click.echo(json.dumps({**head, "status": final.status, "result": final.result,
                               "error": {"kind": final.error_kind, "message": final.error_message}
                               if final.error_kind else None}))
    elif final.status == JobStatus.succeeded.value and final.result:
        metrics = final.result.get("metrics", {})
        click.echo(f"trained {final.result.get('model')}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    else:
        click.echo(f"training {final.status}: {final.error_kind}: {final.error_message}", err=True)
    if final.status != JobStatus.succeeded.value:
        raise SystemExit(1)


def _wait(obj: Context, job_id: str, timeout: float, quiet: bool) -> Job:
    deadline = time.monotonic() + timeout
    shown = None
    while True:
        with Session(obj.engine) as session:
            job = session.get(Job, job_id)
        assert job is not None
        if JobStatus(job.status).terminal:
            return job
        progress = (job.result or {}).get("progress") if job.status == JobStatus.running.value else None
        line = f"{job.status}" + (f": {progress['stage']} {progress['done']}/{progress['total']}"
                                  + (f" loss {progress['loss']}" if progress.get("loss") is not None else "")
                                  if progress else "")
        if line != shown and not quiet:
            click.echo(line, err=True)
            shown = line
        if time.monotonic() > deadline:
            raise click.ClickException(f"still {job.status} after {timeout:.0f} s; the job goes on "
                                       f"(docqueue status {job.batch_id})")
        time.sleep(1.0)


def store_table(models: list[model_store.StoredModel]) -> Table:
    table = Table(title="trained models (model store)")
    for column in ("model", "base", "examples", "labels", "held-out", "micro-F1", "trained at"):
        table.add_column(column)
    for m in models:
        metrics = m.card.get("metrics") or {}
        table.add_row(m.spec, str(m.card.get("base_model")), str(m.card.get("examples")),
                      str(len(m.card.get("labels") or [])) + (" (multi)" if m.card.get("multi_label") else ""),
                      str(metrics.get("held_out", "")), str(metrics.get("micro_f1", "")),
                      str(m.card.get("trained_at", ""))[:19])
    return table


def show_store(obj: Context, as_json: bool) -> None:
    """The store part of ``docqueue models list``: one row (or JSON line, ``"store": true``) per version."""
    models = model_store.list_models(model_store_dir(obj.settings))
    if as_json:
        for m in models:
            click.echo(json.dumps({"store": True, "model": m.spec, "path": str(m.path), **m.card}))
    elif models:
        Console().print(store_table(models))
