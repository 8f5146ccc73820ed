"""Celery tasks: thin wrappers that hand a message to the pipeline with this process's model."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from celery import Celery, Task
from sqlalchemy.engine import url as sa_url

from docqueue import deadletter, rejections
from docqueue.db import get_engine
from docqueue.errors import MessageError
from docqueue.events import EventSink, emit_finished
from docqueue.logs import log_context
from docqueue.models import utcnow
from docqueue.names import TASK_TYPES, queue_name, task_name
from docqueue.schema import BATCH_ID_PATTERN, TaskMessage
from docqueue.settings import Settings
from docqueue.storable import storable_text
from workers import results
from workers.gather import Budget, Gatherer
from workers.memory import TRIM_ABOVE_CHARS, release_memory
from workers.pipeline import process_messages
from workers.registry import process_registry
from workers.status import STATUS, resident_models
from workers.training.task import register_train_task
from workers.webhooks import register_webhook_task

log = logging.getLogger(__name__)

MAX_RETRIES = 5


class DocqueueTask(Task):
    """Retries unexpected failures with back-off; when retries run out, the message's unfinished
    jobs are marked failed with the reason, so no job is left silently 'running' forever."""

    autoretry_for = (Exception,)
    dont_autoretry_for = (MessageError,)
    retry_backoff = True
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = MAX_RETRIES
    settings: Settings
    task_type: str

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        try:
            job_ids = results.message_job_ids(self.task_type, TaskMessage.decode(kwargs))
            db, now = get_engine(self.settings.database_url), utcnow()
            n = results.fail_unfinished(db, job_ids, "internal_error",
                                        f"gave up after {MAX_RETRIES} retries: {type(exc).__name__}: {exc}", now=now)
            log.error("task %s failed for good; marked %d job(s) failed", task_id, n)
            if n:
                emit_finished(EventSink(self.app, self.settings), db, finished_at=now, job_ids=job_ids)
        except Exception:
            log.exception("task %s failed and its jobs could not be marked failed", task_id)


def _dead_letter(task: Task, task_type: str, kwargs: dict[str, Any], error: MessageError,
                 kind: str = "invalid_message") -> None:
    """Store a message whose envelope was fine but whose docqueue kwargs are not, with the
    validation error; its batch (where it names one) counts it as rejected, and the publisher sees
    a ``message.rejected`` event (and webhook, where the message named a valid one)."""
    batch = kwargs.get("batch") if isinstance(kwargs.get("batch"), str) else None
    settings: Settings = task.settings
    correlation = task.request.correlation_id
    refusal = rejections.Refusal(
        queue=queue_name(task_type), kind=kind, reason=str(error), origin=deadletter.ORIGIN_TASK,
        batch=batch if batch and re.fullmatch(BATCH_ID_PATTERN, batch) else None,
        correlation_id=correlation if isinstance(correlation, str) and len(correlation) <= 255 else None,
        webhook=rejections.valid_webhook(kwargs.get("webhook")), worker=f"{task.request.hostname}/{os.getpid()}",
        task=task.name)
    limits = rejections.Limits(max_raw_bytes=settings.dlq_max_raw_bytes, max_entries=settings.dlq_max_entries,
                               events_maxlen=settings.events_maxlen)
    try:
        with task.app.connection_for_write() as conn:
            entry = rejections.record(conn.default_channel.client,
                                      deadletter.task_raw(task.name, kwargs, str(task.request.id)), refusal, limits)
    except Exception:
        log.exception("refused %s message %s (%s) and could not store it as a dead letter",
                      task_type, task.request.id, storable_text(str(error)))
        return
    log.error("refused %s message %s: %s; kept as dead letter %s", task_type, task.request.id,
              storable_text(str(error)), entry)


def register_tasks(app: Celery, settings: Settings) -> None:
    """One task per task type, each named by the shared contract in ``docqueue.names``."""
    for task_type in TASK_TYPES:
        _register(app, settings, task_type)
    register_webhook_task(app, settings)
    register_train_task(app, settings)


def _register(app: Celery, settings: Settings, task_type: str) -> None:
    name = task_name(task_type)
    gatherer = Gatherer(app)
    budget = Budget(max_docs=settings.batch_max_docs, max_tokens=settings.batch_max_tokens,
                    wait_s=settings.batch_gather_ms / 1000, token_cap=settings.max_tokens_per_document)

    @app.task(name=name, bind=True, base=DocqueueTask, settings=settings, task_type=task_type)
    def run(self: Task, **kwargs: Any) -> dict[str, Any]:
        try:
            message = TaskMessage.decode(kwargs, correlation_id=self.request.correlation_id)
        except MessageError as e:
            # It can never succeed, so retrying would only loop: keep it where someone will see it.
            _dead_letter(self, task_type, kwargs, e)
            return {"refused": str(e)}
        with log_context(message.batch, results.message_job_ids(task_type, message)):
            if _split(self, message, kwargs):
                return {"split": len(message.documents)}
            return _run(self, message, kwargs)

    def _split(self: Task, message: TaskMessage, kwargs: dict[str, Any]) -> bool:
        """A big inline message becomes the usual micro-batches, re-enqueued, so that it spreads over
        the workers and its first results are visible in seconds: a 20,000-document message ran as
        one 753-second task while a second worker sat idle. Its rejected documents get their outcome
        here. A re-delivery splits again; the documents' ids derive from (batch, id), so the copies
        store nothing twice and run nothing twice (``workers.results.claim``)."""
        limit = settings.batch_max_docs
        if self.request.retries or len(message.documents) <= limit:
            return False
        documents = [d.model_dump(mode="json") for d in message.documents]
        common = {k: v for k, v in kwargs.items() if k != "documents"}
        correlation = message.correlation_id or self.request.correlation_id
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(documents), limit):
                chunk = documents[start:start + limit]
                self.app.send_task(name, kwargs={**common, "documents": chunk}, queue=queue_name(task_type),
                                   producer=producer, argsrepr="()",
                                   kwargsrepr=f"<{len(chunk)} of {len(documents)} documents of batch {message.batch}>",
                                   **({"correlation_id": correlation} if correlation else {}))
        log.info("split %d inline documents of batch %s into messages of %d", len(documents), message.batch, limit)
        if message.rejected:
            _run(self, message.model_copy(update={"documents": ()}), kwargs)
        return True

    def _run(self: Task, message: TaskMessage, kwargs: dict[str, Any]) -> dict[str, Any]:
        # Only a trickle is gathered: inline messages of integrations, typically one document each.
        # The producer's micro-batches are already sized and length-sorted, and a Celery retry runs
        # alone so that its own back-off and retry count stay meaningful.
        gather = bool(message.documents) and not self.request.retries
        pulled = [] if not gather else gatherer.gather(
            queue=queue_name(task_type), task_name=name, first=message, budget=budget)
        messages = [message, *(g.message for g in pulled)]
        registry = process_registry(settings)
        STATUS.running(sum(len(results.message_job_ids(task_type, m)) for m in messages), message.batch,
                       resident_models(registry.resident()))
        try:
            report = process_messages(task=task_type, messages=messages, db=get_engine(settings.database_url),
                                      registry=registry, worker=f"{self.request.hostname}/{os.getpid()}",
                                      sink=EventSink(self.app, settings))
        except BaseException:
            gatherer.requeue(pulled)
            raise
        finally:
            STATUS.idle(resident_models(registry.resident()))
        gatherer.ack(pulled)  # only now: their outcomes are committed
        if report.chars >= TRIM_ABOVE_CHARS:
            # the documents' memory is free again, but glibc keeps it; give it back to the OS
            release_memory()
        if report.unknown:
            own = set(message.jobs) & set(report.unknown)
            if own:
                where = sa_url.make_url(settings.database_url).render_as_string(hide_password=True)
                _dead_letter(self, task_type, kwargs, MessageError(
                    f"{len(own)} of {len(message.jobs)} job(s) are not in this worker's database "
                    f"({where}): the message was meant for another database"),
                    kind="unknown_jobs")
        # the documents' outcomes, where Flower shows a task's result (docs/operations/metrics.md, "Flower")
        return report.summary()
