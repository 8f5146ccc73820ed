"""The ``docqueue.train`` task: one training job, from its stored examples to a published store model.

The message is an ordinary ``jobs`` envelope naming the job ``docqueue train`` stored; the examples
are that job's document (in the database, not on the queue: a few thousand provisions are megabytes,
and a message must stay far below the broker's limit). The job is claimed and heartbeated like any
other, so a worker killed mid-training leaves a ``running`` job whose heartbeat stops: the reaper puts
it back on the ``train`` queue and the next training worker trains it again from the start (the
killed run's half-written folder is a ``.tmp-*`` that nothing reads). Progress is written while it
runs, to the job's ``result`` (``docqueue results`` shows it) and as ``train.progress`` events.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import sqlalchemy as sa
from celery import Celery, Task
from sqlmodel import col

from docqueue import model_store
from docqueue.db import get_engine
from docqueue.errors import DocumentError, MessageError, ModelUnavailableError
from docqueue.events import EventSink, emit_finished, train_progress_event
from docqueue.models import Job, utcnow
from docqueue.names import TRAIN, task_name
from docqueue.schema import JobStatus, TaskMessage
from docqueue.settings import Settings, model_store_dir
from docqueue.train_examples import from_canonical, sha256
from workers import results
from workers.device import resolve_device
from workers.engines.embedding import resolve_model
from workers.pipeline import JobHeartbeat
from workers.status import STATUS

log = logging.getLogger(__name__)

#: Params a train message carries besides the training parameters of :class:`TrainParams`.
JOB_PARAMS = ("name", "base", "base_revision", "kind")


class ProgressWriter:
    """Progress of one job, to its row (while it is still ``running`` here) and the events stream."""

    def __init__(self, settings: Settings, sink: EventSink | None, batch: str, job_id: str, worker: str) -> None:
        self.db = get_engine(settings.database_url)
        self.sink, self.batch, self.job_id, self.worker = sink, batch, job_id, worker

    def __call__(self, stage: str, done: int, total: int, info: dict[str, Any]) -> None:
        loss = info.get("loss")
        progress = {"progress": {"stage": stage, "done": done, "total": total, "loss": loss,
                                 "at": utcnow().isoformat()}}
        try:
            with self.db.begin() as conn:
                conn.execute(sa.update(Job).where(col(Job.id) == self.job_id,
                                                  col(Job.status) == JobStatus.running.value,
                                                  col(Job.worker) == self.worker).values(result=progress))
            if self.sink is not None:
                self.sink.publish([train_progress_event(self.batch, self.job_id, stage, done, total, loss)])
        except Exception:  # progress is a courtesy: a missed update must not fail the training
            log.warning("could not record the progress of training job %s", self.job_id, exc_info=True)


def train_job(*, settings: Settings, batch: str, params: dict[str, Any], job_id: str, data: str, worker: str,
              sink: EventSink | None) -> tuple[dict[str, Any] | DocumentError, str | None]:
    """Train one job's model into the store; (outcome, model spec) where the outcome is the card."""
    from workers.training.setfit import TrainParams, train

    try:
        p = TrainParams.parse({k: v for k, v in params.items() if k not in JOB_PARAMS})
        name = model_store.check_name(str(params.get("name", "")))
        examples = from_canonical(data)
    except (TypeError, ValueError, KeyError, model_store.StoreError) as e:
        return DocumentError("invalid_params", f"cannot train: {e}"), None
    base_spec = str(params.get("base") or settings.classify_model)
    revision = params.get("base_revision")
    try:
        base = resolve_model(base_spec, str(revision) if revision else None)
    except ModelUnavailableError as e:
        return DocumentError("model_unavailable", str(e)), None
    store = model_store_dir(settings)
    staged = model_store.staging_dir(store, name)
    try:
        trained = train(examples, p, base, staged, resolve_device(settings.device),
                        ProgressWriter(settings, sink, batch, job_id, worker))
        card = {"kind": "classify", "base_model": base_spec, "base_revision": base.revision,
                "data_sha256": sha256(data), "examples": len(examples), "params": p.__dict__,
                "trained_at": utcnow().isoformat(), "batch": batch, "job_id": job_id, **trained}
        stored = model_store.publish(staged, card)
    except OSError as e:
        model_store.discard(staged)
        return DocumentError("model_unavailable", f"cannot load or write the model: {e}".splitlines()[0]), None
    except BaseException:
        model_store.discard(staged)
        raise
    log.info("trained %s in %.0f s: %s", stored.spec, trained["seconds"], trained["metrics"])
    return {"model": stored.spec, "path": str(stored.path), **stored.card}, stored.spec


def register_train_task(app: Celery, settings: Settings) -> None:
    """``docqueue.train`` on the ``train`` queue (consumed only by workers started with it)."""

    @app.task(name=task_name(TRAIN), bind=True, acks_late=True)
    def run(self: Task, **kwargs: Any) -> int:
        try:
            message = TaskMessage.decode(kwargs, correlation_id=self.request.correlation_id)
        except MessageError as e:
            log.error("refused train message %s: %s", self.request.id, e)
            return 0
        db = get_engine(settings.database_url)
        worker = f"{self.request.hostname}/{os.getpid()}"
        claimed = results.claim(db, list(message.jobs), worker, stale_after_s=settings.heartbeat_timeout_s)
        sink = EventSink(self.app, settings)
        stored = 0
        for job in claimed:
            STATUS.running(1, message.batch, [])
            began = time.monotonic()
            try:
                with JobHeartbeat(db, [job.job_id], worker, settings.heartbeat_interval_s):
                    outcome, spec = train_job(settings=settings, batch=message.batch or "", params=dict(message.params),
                                              job_id=job.job_id, data=job.text, worker=worker, sink=sink)
            except Exception as e:  # a crash of the trainer fails this job, visibly; the worker goes on
                log.exception("training job %s crashed", job.job_id)
                outcome, spec = DocumentError("engine_error", f"{type(e).__name__}: {e}"), None
            finally:
                STATUS.idle([])
            finished_at = utcnow()
            stored += results.record_groups(db, [results.RecordGroup([(job.job_id, outcome)], spec, None)],
                                            now=finished_at)
            emit_finished(sink, db, finished_at=finished_at, job_ids=[job.job_id])
            log.info("training job %s finished in %.0f s", job.job_id, time.monotonic() - began)
        return stored
