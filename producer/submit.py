"""Storing a submission and enqueueing it, streamed in chunks.

Rows are written before their messages are sent (a worker must find what a message names), in bulk
inserts per chunk; messages for one chunk go out pipelined on one broker connection.

Outbox: jobs are stored ``pending`` and become ``queued`` only once their chunk's publish
succeeded, so a broker failure mid-submit leaves jobs that say they were never sent (and
``docqueue retry`` sends them) instead of ``queued`` jobs no message will ever name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue import loader_counts
from docqueue.errors import PublishError
from docqueue.events import EventSink, close_batch, emit_finished, open_batch
from docqueue.models import Batch, Document, Job, utcnow
from docqueue.names import REVIEW, queue_name, task_name
from docqueue.reuse import ReuseKey, find_reusable, job_fields
from docqueue.schema import JobStatus, TaskMessage, new_id
from docqueue.secrets import mask_url
from docqueue.settings import Settings
from producer.batching import Sized, estimate_tokens, plan_batches
from producer.loaders import LoadedDocument

#: Redis commands buffered before the publish pipeline is flushed.
PUBLISH_PIPELINE = 500
#: Pause before each further try of a failed publish (seconds); a blip of the broker is ridden out.
PUBLISH_BACKOFF = (0.5, 1.0, 2.0)

log = logging.getLogger(__name__)


@dataclass
class SubmitReport:
    batch_id: str
    documents: int = 0
    queued: int = 0
    failed: int = 0
    messages: int = 0
    reused: int = 0  # succeeded at once with an earlier result for the same content


def _chunks(items: Iterable[LoadedDocument], size: int) -> Iterator[list[LoadedDocument]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _size_cap(task: str, settings: Settings) -> int:
    """Review reads every sentence of a contract, so a long contract weighs its whole length (up to
    one message's budget): messages of long contracts stay small enough for the task time limit.
    Other tasks read at most a model window per document."""
    return settings.batch_max_tokens if task == REVIEW else settings.max_tokens_per_document


def submit_batch(
    *,
    settings: Settings,
    engine: Engine,
    app: Celery,
    task: str,
    documents: Iterable[LoadedDocument],
    params: dict[str, Any],
    chunk_size: int = 2000,
    on_progress: Callable[[SubmitReport], None] | None = None,
    force: bool = False,
    batch_id: str | None = None,
    schedule_id: str | None = None,
    webhook_url: str | None = None,
    webhook_documents: bool = False,
    events: EventSink | None = None,
    stored_already: int = 0,
) -> SubmitReport:
    """Store ``documents`` as one batch of ``task`` jobs and enqueue them in micro-batches.

    Documents that failed to load are stored too, as failed jobs with their reason, so that the
    batch accounts for every input. A document whose content already has a result for this task,
    parameters and model gets that result at once (``reused_from``), unless ``force``.

    ``batch_id`` lets the caller name the batch before anything happens (so a crash still tells the
    user which batch); ``schedule_id`` records the schedule whose run this is. Raises
    :class:`PublishError` when the broker fails for good: reading stops, and the chunk's jobs stay
    ``pending``.

    Completion events (``docqueue.events``): the batch is marked open while it is stored, so workers
    that drain its first chunks do not call it finished; documents finished here (unreadable, reused)
    get their events after their chunk's commit; batch.finished follows from whoever finishes last.

    The batch's row is written in the same transaction as its first chunk: no document (an empty
    glob) or a database that fails on the first chunk leaves no empty batch behind to be listed as
    finished. ``stored_already`` continues a batch whose first documents were stored by an
    interrupted run (a recovered schedule run): its row exists, and positions go on after them.
    """
    key = ReuseKey.of(settings, task, params)
    report = SubmitReport(batch_id=batch_id or new_id(), documents=stored_already)
    batch_row = None if stored_already else {
        "id": report.batch_id, "task": task, "params": params, "model": None, "created_at": utcnow(),
        "schedule_id": schedule_id, "webhook_url": webhook_url, "webhook_documents": webhook_documents}
    sink = events or EventSink(app, settings)
    open_batch(sink, report.batch_id)
    try:
        _store_chunks(settings=settings, engine=engine, app=app, task=task, documents=documents, params=params,
                      chunk_size=chunk_size, on_progress=on_progress, force=force, key=key, report=report, sink=sink,
                      batch_row=batch_row)
    finally:
        close_batch(sink, engine, report.batch_id)
    return report


def _store_chunks(*, settings: Settings, engine: Engine, app: Celery, task: str, documents: Iterable[LoadedDocument],
                  params: dict[str, Any], chunk_size: int, on_progress: Callable[[SubmitReport], None] | None,
                  force: bool, key: ReuseKey, report: SubmitReport, sink: EventSink,
                  batch_row: dict[str, Any] | None) -> None:
    for chunk in _chunks(documents, chunk_size):
        now = utcnow()
        doc_rows: list[dict[str, Any]] = []
        job_rows: list[dict[str, Any]] = []
        sized: list[Sized] = []
        hits = {}
        if not force:
            with engine.connect() as conn:
                hits = find_reusable(conn, key, [d.sha256 for d in chunk if d.sha256 and d.error_kind is None])
        for doc in chunk:
            doc_id, job_id = new_id(), new_id()
            doc_rows.append({"id": doc_id, "batch_id": report.batch_id, "position": report.documents + len(doc_rows),
                             "source": doc.source,
                             "sha256": doc.sha256, "text": doc.text, "meta": doc.meta, "created_at": now,
                             "source_row": doc.source_row, "external_id": doc.external_id,
                             "page_offsets": doc.page_offsets})
            failed = doc.error_kind is not None
            hit = None if failed or not doc.sha256 else hits.get(doc.sha256)
            job_rows.append({
                "id": job_id, "batch_id": report.batch_id, "document_id": doc_id, "task": task,
                "status": (JobStatus.failed if failed else JobStatus.succeeded if hit else JobStatus.pending).value,
                "attempts": 0, "error_kind": doc.error_kind, "error_message": doc.error_message,
                "created_at": now, "finished_at": now if failed or hit else None, **job_fields(key, hit),
            })
            if failed:
                report.failed += 1
            elif hit:
                report.reused += 1
            else:
                sized.append(Sized(job_id, estimate_tokens(doc.text, _size_cap(task, settings))))
        with engine.begin() as conn:
            if batch_row is not None:
                conn.execute(sa.insert(Batch), [batch_row])
                batch_row = None
            conn.execute(sa.insert(Document), doc_rows)
            conn.execute(sa.insert(Job), job_rows)
        done_here = [j["id"] for j in job_rows if j["finished_at"] is not None]
        if done_here:  # unreadable or reused: finished at submit time, their events come from here
            emit_finished(sink, engine, finished_at=now, job_ids=done_here)
        _count_loader_failures(sink, task, [d.error_kind for d in chunk if d.error_kind])
        open_batch(sink, report.batch_id)  # refreshed per chunk: a slow reader keeps it open
        report.documents += len(chunk)
        report.messages += _publish_with_retry(app, task, report, params, sized, settings)
        _mark_queued(engine, [s.job_id for s in sized])
        report.queued += len(sized)
        if on_progress is not None:
            on_progress(report)


def _count_loader_failures(sink: EventSink, task: str, kinds: list[str]) -> None:
    """Loader failures for ``docqueue metrics serve`` (no worker sees these documents)."""
    if not kinds:
        return
    try:
        with sink.client() as client:
            loader_counts.record(client, task, kinds)
    except Exception:  # best effort: the failures are stored with the batch already
        log.warning("could not count %d loader failure(s) for metrics", len(kinds), exc_info=True)


def _publish_with_retry(app: Celery, task: str, report: SubmitReport, params: dict[str, Any],
                        sized: list[Sized], settings: Settings) -> int:
    """Publish one chunk, retrying with back-off. A retry may re-send messages the failed try had
    already flushed: harmless, because claims are idempotent (a job runs once)."""
    tries = settings.publish_retries
    for attempt in range(tries):
        try:
            return _enqueue(app, task, report.batch_id, params, sized, settings)
        except Exception as e:  # kombu/redis raise a zoo of connection errors; all mean "not sent"
            if attempt + 1 >= tries:
                raise PublishError(report, len(sized), f"{type(e).__name__}: {mask_url(str(e))}") from e
            time.sleep(PUBLISH_BACKOFF[min(attempt, len(PUBLISH_BACKOFF) - 1)])
    return 0  # pragma: no cover - the loop returns or raises


def _mark_queued(engine: Engine, job_ids: list[str]) -> None:
    """pending -> queued once published; only from pending, so a job a fast worker already claimed
    (its message overtook this update) is not put back."""
    if not job_ids:
        return
    with engine.begin() as conn:
        for start in range(0, len(job_ids), 900):  # SQLite's bound-parameter limit
            conn.execute(
                sa.update(Job)
                .where(col(Job.id).in_(job_ids[start:start + 900]), col(Job.status) == JobStatus.pending.value)
                .values(status=JobStatus.queued.value)
            )


def _enqueue(app: Celery, task: str, batch_id: str, params: dict[str, Any], sized: list[Sized],
             settings: Settings) -> int:
    """Send a chunk's micro-batches through one Redis pipeline (kombu's publish batch): one round
    trip per few hundred messages instead of one per message."""
    sent = 0
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_PIPELINE):
        for group in plan_batches(sized, settings.batch_max_docs, settings.batch_max_tokens):
            message = TaskMessage(batch=batch_id, params=params, jobs=tuple(group))
            # a short repr for logs and monitoring; Celery would otherwise saferepr every job id
            app.send_task(task_name(task), kwargs=message.model_dump(mode="json"), queue=queue_name(task),
                          producer=producer, argsrepr="()", kwargsrepr=f"<{len(group)} jobs of batch {batch_id}>")
            sent += 1
    return sent
