"""Celery tasks: thin wrappers that hand a message to the pipeline with this process's model."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from docqueue.db import get_engine
from docqueue.errors import MessageError
from docqueue.names import TASK_TYPES, task_name
from docqueue.schema import TaskMessage
from docqueue.settings import Settings
from workers import results
from workers.pipeline import process_message
from workers.registry import process_registry

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
            n = results.fail_unfinished(get_engine(self.settings.database_url), job_ids, "internal_error",
                                        f"gave up after {MAX_RETRIES} retries: {type(exc).__name__}: {exc}")
            log.error("task %s failed for good; marked %d job(s) failed", task_id, n)
        except Exception:
            log.exception("task %s failed and its jobs could not be marked failed", task_id)


def register_tasks(app: Celery, settings: Settings) -> None:
    """One task per task type, each named by the shared contract in ``docqueue.names``."""
    for task_type in TASK_TYPES:
        _register(app, settings, task_type)


def _register(app: Celery, settings: Settings, task_type: str) -> None:
    @app.task(name=task_name(task_type), bind=True, base=DocqueueTask, settings=settings, task_type=task_type)
    def run(self: Task, **kwargs: Any) -> int:
        db = get_engine(settings.database_url)
        try:
            return process_message(task=task_type, kwargs=kwargs, db=db, registry=process_registry(settings),
                                   worker=str(self.request.hostname))
        except MessageError as e:
            # It can never succeed, so retrying would only loop; say loudly what was wrong.
            log.error("dropping malformed %s message %s: %s", task_type, self.request.id, e)
            return 0
