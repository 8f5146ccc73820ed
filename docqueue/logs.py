"""Log lines as JSON (``DOCQUEUE_LOG_FORMAT=json``), carrying the batch and job ids being worked on.

A log shipper (Loki, Elasticsearch, CloudWatch) gets one JSON object per line: ``time``, ``level``,
``logger``, ``message``, and, where the line was written while a batch's message was being worked
on, ``batch_id`` and ``job_ids`` (plus Celery's ``task_id``/``task_name`` inside a task). The ids
travel in :mod:`contextvars` set by whoever knows them (the worker's task, the producer's submit), so
no call site has to pass them to every log call. Passwords are masked like every other line
(:mod:`docqueue.secrets`).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from docqueue.secrets import install_log_masking, mask_url

#: Ids of the batch and jobs this thread/task is working on (None: none known).
_batch_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("docqueue_batch_id", default=None)
_job_ids: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("docqueue_job_ids", default=())

#: A line names at most this many job ids (a micro-batch holds up to 128; the rest are counted).
MAX_JOB_IDS = 20

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextmanager
def log_context(batch_id: str | None = None, job_ids: Sequence[str] = ()) -> Iterator[None]:
    """Lines logged inside the block carry ``batch_id`` and ``job_ids``."""
    b = _batch_id.set(batch_id)
    j = _job_ids.set(tuple(job_ids))
    try:
        yield
    finally:
        _batch_id.reset(b)
        _job_ids.reset(j)


def set_log_context(batch_id: str | None, job_ids: Sequence[str] = ()) -> None:
    """Like :func:`log_context`, for code that cannot wrap a block (the rest of this context)."""
    _batch_id.set(batch_id)
    _job_ids.set(tuple(job_ids))


class ContextFilter(logging.Filter):
    """Copies the current batch and job ids onto every record (as ``batch_id``/``job_ids``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "batch_id"):
            record.batch_id = _batch_id.get()
        if not hasattr(record, "job_ids"):
            record.job_ids = _job_ids.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises (a log line that cannot be encoded is still a line)."""

    def format(self, record: logging.LogRecord) -> str:
        ContextFilter().filter(record)  # records from handlers that were not given the filter
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_url(record.getMessage()),
            "process": record.process,
        }
        if record.batch_id:  # type: ignore[attr-defined]
            out["batch_id"] = record.batch_id  # type: ignore[attr-defined]
        jobs: tuple[str, ...] = record.job_ids  # type: ignore[attr-defined]
        if jobs:
            out["job_ids"] = list(jobs[:MAX_JOB_IDS])
            if len(jobs) > MAX_JOB_IDS:
                out["job_ids_more"] = len(jobs) - MAX_JOB_IDS
        # Celery's task logger adds these; any other `extra=` keys are kept as they are
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in ("batch_id", "job_ids") and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exc_info"] = mask_url(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack_info"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


def use_json(handler: logging.Handler) -> None:
    """Make ``handler`` write JSON lines with the batch/job context."""
    handler.setFormatter(JsonFormatter())
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())


def configure_json_logging(logger: logging.Logger | None = None, level: int | None = None) -> None:
    """JSON on every handler of ``logger`` (root by default); a stderr handler if it has none."""
    install_log_masking()
    logger = logger or logging.getLogger()
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
    for handler in logger.handlers:
        use_json(handler)
    if level is not None:
        logger.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn(...) becomes a JSON line too, not raw stderr text
