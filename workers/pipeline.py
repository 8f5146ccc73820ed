"""Running queue messages: decode, claim, run the resident engine, record. No Celery here.

Several messages (a micro-batch plus whatever trickle the worker gathered, see ``workers.gather``)
are processed as one: one claim, one engine run per (model, parameters) group, one transaction for
every outcome.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import torch
from sqlalchemy.engine import Engine

from docqueue.chat import request_model
from docqueue.errors import DocumentError
from docqueue.events import EventSink, emit_finished
from docqueue.models import utcnow
from docqueue.names import GENERATE
from docqueue.params import Limits, ParamsError, TaskParams, parse_params
from docqueue.schema import TaskMessage
from docqueue.settings import Settings
from workers import metrics, results
from workers.engines import Outcome, TaskEngine
from workers.engines.forward import observing
from workers.language_check import flag_languages
from workers.registry import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RunReport:
    """What one call did: jobs whose outcome it stored, messages it covered, engine calls it made."""

    stored: int = 0
    messages: int = 0
    jobs: int = 0
    engine_runs: int = 0
    chars: int = 0  # characters of the documents it ran (the worker trims memory after big ones)
    unknown: list[str] = field(default_factory=list)  # job ids this database does not have
    succeeded: int = 0  # documents of this call whose outcome is a result
    failed: dict[str, int] = field(default_factory=dict)  # documents that failed, by error kind

    def summary(self) -> dict[str, Any]:
        """What the Celery task returns, so Flower's Result column (and ``celery events``) shows the
        documents' outcomes: the task itself succeeds even when every document in it failed."""
        return {"stored": self.stored, "jobs": self.jobs, "succeeded": self.succeeded,
                "failed": sum(self.failed.values()), "failed_by_kind": dict(sorted(self.failed.items()))}


def _free_accelerator_memory() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def typed_params(task: str, raw: dict[str, Any], settings: Settings) -> TaskParams | DocumentError:
    """The shared prologue of every engine run: a message's params as the task's model, or the
    ``invalid_params`` error every document of the message fails with (a typo such as
    ``mutli_label`` must not run with the default and look like a bad model)."""
    try:
        return parse_params(task, raw, Limits.of(settings))
    except ParamsError as e:
        return DocumentError("invalid_params", str(e))


def _run_splitting(engine: TaskEngine, texts: Sequence[str], params: TaskParams, report: RunReport
                   ) -> list[Outcome]:
    """``engine.run``, halving the batch on CUDA out-of-memory until it fits; a single document
    that still does not fit fails alone (``out_of_memory``) instead of failing its batch."""
    report.engine_runs += 1
    try:
        outcomes = engine.run(texts, params)
    except torch.cuda.OutOfMemoryError as e:
        reason = str(e).splitlines()[0] if str(e) else "CUDA out of memory"
    else:
        if len(outcomes) != len(texts):
            raise RuntimeError(f"engine returned {len(outcomes)} outcomes for {len(texts)} documents")
        return outcomes
    # outside the except block: the traceback (and the tensors its frames hold) is released first
    _free_accelerator_memory()
    if len(texts) == 1:
        return [DocumentError("out_of_memory", f"the document does not fit in accelerator memory: {reason}")]
    mid = len(texts) // 2
    log.warning("out of memory on a batch of %d documents; retrying as %d + %d", len(texts), mid, len(texts) - mid)
    return _run_splitting(engine, texts[:mid], params, report) + _run_splitting(engine, texts[mid:], params, report)


def run_engine(engine: TaskEngine, texts: list[str], params: TaskParams,
               report: RunReport | None = None) -> list[Outcome]:
    """The whole batch in one call (split on out-of-memory); if that raises, each document alone,
    so one bad document fails only itself and its error names what went wrong."""
    report = report if report is not None else RunReport()
    try:
        return _run_splitting(engine, texts, params, report)
    except Exception:
        if len(texts) == 1:
            raise
        log.exception("batch of %d failed; retrying its documents one by one", len(texts))
    isolated: list[Outcome] = []
    for text in texts:
        try:
            isolated.extend(_run_splitting(engine, [text], params, report))
        except Exception as e:
            isolated.append(DocumentError("engine_error", f"{type(e).__name__}: {e}"))
    return isolated


class JobHeartbeat:
    """Keeps the claimed jobs' heartbeat (``jobs.heartbeat_at``) fresh while they run, from a thread
    beside the engine (torch releases the GIL in its kernels), so the reaper can tell a long job from
    a dead worker. (A schedule run's liveness key in Redis is another thing: ``producer.scheduler``.)"""

    def __init__(self, db: Engine, job_ids: list[str], worker: str, interval_s: float) -> None:
        self._args = (db, job_ids, worker)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docqueue-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                results.heartbeat(*self._args)
            except Exception:  # a missed beat is not fatal; the next one may get through
                log.warning("could not refresh the heartbeat of %d job(s)", len(self._args[1]), exc_info=True)

    def __enter__(self) -> JobHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def job_params(task: str, params: dict[str, Any], text: str) -> dict[str, Any]:
    """The params one job runs with: its message's, except that a generate request naming its own
    ``body.model`` runs that model when the message names none (so each line of a batch file goes to
    its model, through the same allow-list and the same ``model_not_allowed`` as a message's model)."""
    if task != GENERATE or params.get("model"):
        return params
    model = request_model(text)
    return {**params, "model": model} if model else params


def _group_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def process_messages(*, task: str, messages: Sequence[TaskMessage], db: Engine, registry: Registry,
                     worker: str, sink: EventSink | None = None) -> RunReport:
    """Process several messages of one task as one batch.

    Jobs are claimed in one UPDATE (only unfinished ones), run through the engine once per group
    of messages sharing parameters (and so the model), and every outcome is stored in one
    transaction, written only where the job is still unfinished. With a ``sink``, the completion
    events of the jobs stored (and of batches they finished) follow that commit.
    """
    report = RunReport(messages=len(messages))
    settings = registry.settings

    def retried(what: str, write: Callable[[], T]) -> T:
        return results.retrying(write, budget_s=settings.db_retry_s, what=what)

    inline = [m for m in messages if not m.jobs]
    rejected: list[str] = []
    stored_at = utcnow()
    inline_ids = iter(retried("storing inline documents", lambda: results.materialize_inline_many(
        db, task, inline, settings, now=stored_at, rejected_ids=rejected)) if inline else [])
    if rejected and sink is not None:  # rejected, conflicting, reused: finished as soon as stored
        emit_finished(sink, db, finished_at=stored_at, job_ids=rejected)
    per_message = [m.jobs if m.jobs else next(inline_ids) for m in messages]
    params_of: dict[str, dict[str, Any]] = {}
    for message, ids in zip(messages, per_message, strict=True):
        for job_id in ids:
            params_of.setdefault(job_id, message.params)
    job_ids = list(params_of)
    report.jobs = len(job_ids)
    claimed = retried("claiming jobs", lambda: results.claim(db, job_ids, worker,
                                                              stale_after_s=settings.heartbeat_timeout_s))
    if len(claimed) < len(job_ids):
        claimed_ids = {j.job_id for j in claimed}
        report.unknown = retried("looking up jobs", lambda: results.missing_jobs(
            db, [j for j in job_ids if j not in claimed_ids]))
    if not claimed:
        log.info("%d message(s) for %d job(s): none to run (finished, cancelled or running elsewhere)",
                 len(messages), len(job_ids))
        return report
    report.chars = sum(len(j.text) for j in claimed)
    _observe_queue_wait(task, claimed)
    groups: dict[str, list[results.ClaimedJob]] = {}
    for job in claimed:
        params_of[job.job_id] = job_params(task, params_of[job.job_id], job.text)
        groups.setdefault(_group_key(params_of[job.job_id]), []).append(job)
    recorded: list[results.RecordGroup] = []
    with JobHeartbeat(db, [j.job_id for j in claimed], worker, settings.heartbeat_interval_s):
        for jobs in groups.values():
            recorded.append(_run_group(task, params_of[jobs[0].job_id], jobs, registry, report))
        finished_at = utcnow()
        # the engine's work is done: keep it through a database outage instead of running it again
        report.stored = retried("storing outcomes", lambda: results.record_groups(db, recorded, now=finished_at))
    _count_documents(task, recorded, report)  # only once stored: a failed commit is retried, not counted twice
    _observe_latency(task, claimed, finished_at)
    metrics.observe_gpu_memory()
    if sink is not None and report.stored:
        emit_finished(sink, db, finished_at=finished_at, job_ids=[j.job_id for j in claimed])
    log.info("stored %d outcome(s) for %d job(s) from %d message(s) in %d engine run(s)",
             report.stored, len(claimed), len(messages), report.engine_runs)
    return report


def _observe_queue_wait(task: str, claimed: Sequence[results.ClaimedJob]) -> None:
    now = datetime.now(timezone.utc)
    for job in claimed:
        if job.attempts > 1:
            metrics.RETRIES.labels(task=task).inc()
        if job.attempts == 1 and job.created_at is not None:
            # UTC-aware on every database (docqueue.models.UtcDateTime)
            metrics.QUEUE_WAIT.labels(task=task).observe(max(0.0, (now - job.created_at).total_seconds()))


def _observe_latency(task: str, claimed: Sequence[results.ClaimedJob], finished_at: datetime) -> None:
    """Submission to stored outcome, per job (``docqueue_job_latency_seconds``)."""
    done = finished_at if finished_at.tzinfo else finished_at.replace(tzinfo=timezone.utc)
    for job in claimed:
        if job.created_at is not None:
            created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=timezone.utc)
            metrics.LATENCY.labels(task=task).observe(max(0.0, (done - created).total_seconds()))


def _count_documents(task: str, recorded: Sequence[results.RecordGroup], report: RunReport) -> None:
    counts: dict[tuple[str, str, str], int] = {}
    for group in recorded:
        model = group.model_id or ""
        for _job_id, outcome in group.outcomes:
            key = (model, "failed", outcome.kind) if isinstance(outcome, DocumentError) else (model, "succeeded", "")
            counts[key] = counts.get(key, 0) + 1
    outcomes: dict[tuple[str, str], int] = {}
    for (model, status, kind), n in counts.items():
        metrics.DOCUMENTS.labels(task=task, model=model, status=status, error_kind=kind).inc(n)
        outcomes[(status, kind)] = outcomes.get((status, kind), 0) + n
        if status == "failed":
            report.failed[kind] = report.failed.get(kind, 0) + n
        else:
            report.succeeded += n
    metrics.count_outcomes(task, outcomes)


def _run_group(task: str, params: dict[str, Any], jobs: list[results.ClaimedJob], registry: Registry,
               report: RunReport) -> results.RecordGroup:
    model = params.get("model")
    revision = params.get("model_revision")
    ids = [j.job_id for j in jobs]
    typed = typed_params(task, params, registry.settings)
    if isinstance(typed, DocumentError):
        return results.RecordGroup([(i, typed) for i in ids], None, None)
    try:
        engine = registry.get(task, str(model) if model else None, str(revision) if revision else None,
                              params=params)
    except DocumentError as e:
        # The submission named a model this worker cannot load: every document says so.
        return results.RecordGroup([(i, e) for i in ids], str(model) if model else None, None)
    metrics.BATCH_SIZE.observe(len(jobs))
    began = time.perf_counter()
    try:
        # the engine's forward passes feed the token counters under this task and model
        with metrics.engine_labels(task, engine.model_id), observing(metrics.observe_forward):
            outcomes = run_engine(engine, [j.text for j in jobs], typed, report)
    except Exception as e:  # a single document that crashed the engine
        outcomes = [DocumentError("engine_error", f"{type(e).__name__}: {e}")]
    outcomes = flag_languages(task, engine.model_id, [j.text for j in jobs], outcomes)
    metrics.BATCH_SECONDS.labels(task=task, model=engine.model_id).observe(time.perf_counter() - began)
    return results.RecordGroup(list(zip(ids, with_runtime(outcomes, engine), strict=True)), engine.model_id,
                               engine.model_revision)


def with_runtime(outcomes: list[Outcome], engine: TaskEngine) -> list[Outcome]:
    """Each result says what ran its model (``runtime``: ``torch-cpu-bf16``, ``onnx-cpu-int8``...), next
    to the model id and revision: the same model in bf16 or int8 gives slightly different scores, and
    a reused result keeps the runtime of the job that really ran it. Engines without a model (a noop
    engine) add nothing."""
    runtime = getattr(engine, "runtime", None)
    if not runtime:
        return outcomes
    return [{**o, "runtime": runtime} if isinstance(o, dict) else o for o in outcomes]


def process_message(*, task: str, kwargs: dict[str, Any], db: Engine, registry: Registry, worker: str,
                    sink: EventSink | None = None) -> int:
    """Process one message; returns the number of jobs whose outcome this call stored."""
    return process_messages(task=task, messages=[TaskMessage.decode(kwargs)], db=db, registry=registry,
                            worker=worker, sink=sink).stored
