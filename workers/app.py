"""The worker's Celery application and its process start-up hooks."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from sqlalchemy.engine import make_url

from docqueue import presence
from docqueue.broker import redis_client, resolve_broker_url
from docqueue.db import dispose_after_fork, ensure_schema, get_engine
from docqueue.logs import use_json
from docqueue.queue import make_celery
from docqueue.settings import Settings, get_settings
from workers import metrics
from workers.device import configure_threads
from workers.metrics_dir import remove_owned_dir
from workers.reaper import Reaper
from workers.registry import process_registry
from workers.status import STATUS, resident_models
from workers.tasks import register_tasks

log = logging.getLogger(__name__)

#: Task types whose models every worker process loads at start (set by ``python -m workers``).
PRELOAD_ENV = "DOCQUEUE_PRELOAD"
PROCESSES_ENV = "DOCQUEUE_PROCESSES"
POOL_ENV = "DOCQUEUE_POOL"


def preload_models(settings: Settings) -> None:
    """Load this process's models now, so the first message does not pay for it."""
    configure_threads(int(os.environ.get(PROCESSES_ENV, "1")))
    tasks = [t for t in os.environ.get(PRELOAD_ENV, "").split(",") if t]
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # Celery would log each bar update as a WARNING (redirected stderr)
    process_registry(settings).preload(tasks)


class CeleryTaskFilter(logging.Filter):
    """Adds Celery's task id and name to records logged inside a task (what Celery's own task
    formatter prints, which the JSON formatter replaces)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from celery._state import get_current_task

        task = get_current_task()
        if task is not None and task.request.id and not hasattr(record, "task_id"):
            record.task_id, record.task_name = task.request.id, task.name
        return True


def json_log_handlers(logger: logging.Logger) -> None:
    """JSON lines on every handler Celery gave ``logger`` (``DOCQUEUE_LOG_FORMAT=json``)."""
    for handler in logger.handlers:
        use_json(handler)
        if not any(isinstance(f, CeleryTaskFilter) for f in handler.filters):
            handler.addFilter(CeleryTaskFilter())
    logging.captureWarnings(True)


def engine_url(database_url: str) -> str:
    """The database URL with its password hidden, for the start-up line."""
    return make_url(database_url).render_as_string(hide_password=True)


class PresenceBeat(threading.Thread):
    """Keeps this worker's record (``docqueue.presence``) fresh while the worker lives."""

    def __init__(self, app: Celery, record: presence.WorkerRecord) -> None:
        super().__init__(name="docqueue-presence", daemon=True)
        self.app, self.record = app, record
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                with self.app.connection_for_write() as conn:
                    presence.publish(conn.default_channel.client, self.record)
            except Exception:
                log.warning("could not refresh this worker's record in Redis", exc_info=True)
            if self.stopped.wait(presence.RECORD_TTL_S / 3):
                break
        try:
            with self.app.connection_for_write() as conn:
                presence.withdraw(conn.default_channel.client, self.record.node)
        except Exception:
            log.debug("could not withdraw this worker's record", exc_info=True)


def create_app(settings: Settings | None = None, queues: list[str] | None = None,
               refused: dict[str, str] | None = None, device: str = "cpu", processes: int = 1) -> Celery:
    """The worker's app; ``queues``/``refused`` (queue -> why not) are announced in Redis once ready."""
    settings = settings or get_settings()
    ensure_schema(settings.database_url)
    app = make_celery(settings, resolve_broker_url(settings, announce=log.warning))
    register_tasks(app, settings)

    reaper = Reaper(get_engine(settings.database_url), app, settings)

    beats: list[PresenceBeat] = []

    if settings.log_format == "json":
        @after_setup_logger.connect(weak=False)
        @after_setup_task_logger.connect(weak=False)
        def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
            if logger is not None:
                json_log_handlers(logger)

    @worker_ready.connect(weak=False)
    def _main_ready(sender: Any = None, **_: Any) -> None:
        # the main process (not the children) looks for jobs whose worker died, and says it is here
        log.info("docqueue worker: database %s; reaper every %.0f s (heartbeat timeout %.0f s)",
                 engine_url(settings.database_url), settings.reaper_interval_s, settings.heartbeat_timeout_s)
        reaper.start()
        record = presence.WorkerRecord(
            node=str(getattr(sender, "hostname", None) or f"docqueue-{os.getpid()}"), pid=os.getpid(),
            queues=list(queues or []), refused=dict(refused or {}), device=device, processes=processes,
            database=engine_url(settings.database_url), started_at=time.time())
        beats.append(PresenceBeat(app, record))
        beats[0].start()
        if processes == 1 and os.environ.get(POOL_ENV) == "solo":
            STATUS.start(app)  # a solo worker runs its tasks in this very process
        if settings.metrics_port:
            metrics.start_server(settings.metrics_port, list(queues or []))

    @worker_shutting_down.connect(weak=False)
    def _main_stopping(sig: str | None = None, how: str | None = None, **_: Any) -> None:
        # Celery prints its own notice of this straight to stdout, bypassing logging (and JSON)
        log.info("docqueue worker: %s shutdown (%s)", (how or "").lower(), sig)

    @worker_shutdown.connect(weak=False)
    def _main_stop(**_: Any) -> None:
        reaper.stopped.set()
        for beat in beats:
            beat.stopped.set()
            beat.join(5)
        STATUS.stop()
        remove_owned_dir()

    @worker_process_init.connect(weak=False)
    def _child_start(**_: Any) -> None:
        # Runs in each prefork child right after the fork: fresh DB connections, then the model.
        dispose_after_fork()
        STATUS.start(app)
        preload_models(settings)
        STATUS.idle(resident_models(process_registry(settings).resident()))  # `top` sees it at once

    @worker_process_shutdown.connect(weak=False)
    def _child_stop(pid: int | None = None, **_: Any) -> None:
        # a child recycled or stopped: its live gauges (resident models, GPU memory) go with it
        STATUS.stop()
        metrics.mark_dead(pid or os.getpid())

    return app


def announce_refusals(settings: Settings, refused: dict[str, str]) -> None:
    """A worker that refused every queue exits; its reasons stay in Redis a while, so a ``submit``
    shortly after can still say why nothing consumes the queue."""
    try:
        client = redis_client(resolve_broker_url(settings))
        record = presence.WorkerRecord(node=f"docqueue-{os.getpid()}@{socket.gethostname()} (exited)",
                                       pid=os.getpid(), queues=[], refused=refused,
                                       database=engine_url(settings.database_url), started_at=time.time())
        client.set(presence.KEY_PREFIX + record.node, json.dumps(record.as_json()), ex=300)
    except Exception:
        log.debug("could not record the refusals in Redis", exc_info=True)
