"""The worker's Celery application and its process start-up hooks."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import replace
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
from celery.utils.log import get_multiprocessing_logger
from sqlalchemy.engine import make_url

from docqueue import presence
from docqueue.broker import redis_client, resolve_broker_url
from docqueue.db import dispose_after_fork, ensure_schema, get_engine
from docqueue.errors import DocumentError
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


def load_failure(tasks: str, error: DocumentError) -> str:
    """The one line a worker says when a model of ``tasks`` passed the start checks but cannot load
    (solo pool: printed before it exits; prefork: logged by each child, which stays up)."""
    return f"docqueue worker: cannot load a model of {tasks} ({error.kind}): {str(error).rstrip('.')}"


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


class WorkerHooks:
    """The worker's Celery signal handlers, one named job each, connected in the order they must run.

    Main process: on ``worker_ready`` the start-up line, the reaper, the presence record, the solo
    pool's status and the metrics server; on shutdown each is stopped again. Prefork children: on
    ``worker_process_init`` fresh database connections, the status record, then the models; on
    ``worker_process_shutdown`` their live gauges go with them."""

    def __init__(self, app: Celery, settings: Settings, record: presence.WorkerRecord, processes: int) -> None:
        self.app, self.settings, self.record, self.processes = app, settings, record, processes
        self.reaper = Reaper(get_engine(settings.database_url), app, settings)
        self.presence: PresenceBeat | None = None

    def connect(self) -> None:
        if self.settings.log_format == "json":
            after_setup_logger.connect(self.json_logs, weak=False)
            after_setup_task_logger.connect(self.json_logs, weak=False)
        for hook in (self.log_start, self.start_reaper, self.announce_presence, self.start_solo_status,
                     self.start_metrics_server):
            worker_ready.connect(hook, weak=False)
        worker_shutting_down.connect(self.log_stopping, weak=False)
        for hook in (self.stop_reaper, self.withdraw_presence, self.stop_status, self.remove_metrics_dir):
            worker_shutdown.connect(hook, weak=False)
        for hook in (self.reset_database_after_fork, self.start_status, self.load_models):
            worker_process_init.connect(hook, weak=False)
        for hook in (self.stop_status, self.drop_child_gauges):
            worker_process_shutdown.connect(hook, weak=False)

    # ------------------------------------------------------------------------- logging
    def json_logs(self, logger: logging.Logger | None = None, **_: Any) -> None:
        """JSON lines on the handlers Celery just set up (``DOCQUEUE_LOG_FORMAT=json``).

        With the root logger goes billiard's ``multiprocessing`` logger: Celery gives it a plain-text
        handler of its own, it does not propagate, and the signal never names it, yet it is the one
        that says a pool child died ("Process 'ForkPoolWorker-1' pid:… exited with 'signal 9'")."""
        if logger is None:
            return
        json_log_handlers(logger)
        if logger is logging.getLogger():
            json_log_handlers(get_multiprocessing_logger())

    def log_start(self, **_: Any) -> None:
        log.info("docqueue worker: database %s; reaper every %.0f s (heartbeat timeout %.0f s)",
                 engine_url(self.settings.database_url), self.settings.reaper_interval_s,
                 self.settings.heartbeat_timeout_s)

    def log_stopping(self, sig: str | None = None, how: str | None = None, **_: Any) -> None:
        """Celery prints its own notice of this straight to stdout, bypassing logging (and JSON)."""
        log.info("docqueue worker: %s shutdown (%s)", (how or "").lower(), sig)

    # ------------------------------------------------------------------- main process
    def start_reaper(self, **_: Any) -> None:
        """The main process (not the children) looks for jobs whose worker died."""
        self.reaper.start()

    def stop_reaper(self, **_: Any) -> None:
        self.reaper.stopped.set()

    def announce_presence(self, sender: Any = None, **_: Any) -> None:
        """This worker's record in Redis (``docqueue.presence``), under Celery's node name."""
        node = str(getattr(sender, "hostname", None) or f"docqueue-{os.getpid()}")
        self.presence = PresenceBeat(self.app, replace(self.record, node=node, pid=os.getpid(),
                                                       started_at=time.time()))
        self.presence.start()

    def withdraw_presence(self, **_: Any) -> None:
        if self.presence is not None:
            self.presence.stopped.set()
            self.presence.join(5)

    def start_solo_status(self, **_: Any) -> None:
        """A solo worker runs its tasks in this very process: its status record is kept here."""
        if self.processes == 1 and os.environ.get(POOL_ENV) == "solo":
            STATUS.start(self.app)

    def start_metrics_server(self, **_: Any) -> None:
        if self.settings.metrics_port:
            metrics.start_server(self.settings.metrics_port, list(self.record.queues))

    def stop_status(self, **_: Any) -> None:
        """The status record and its live gauges (resident models, GPU memory) go with the process."""
        STATUS.stop()

    def remove_metrics_dir(self, **_: Any) -> None:
        remove_owned_dir()

    # ---------------------------------------------------------------- prefork children
    def reset_database_after_fork(self, **_: Any) -> None:
        """Right after the fork: connections inherited from the parent must not be shared."""
        dispose_after_fork()

    def start_status(self, **_: Any) -> None:
        STATUS.start(self.app)

    def load_models(self, **_: Any) -> None:
        """The child's resident models, loaded now; ``top`` sees them at once.

        A model that passed the start checks but cannot load (a folder without weights, a broken
        file) is one error line, as on the solo pool, not Celery's "signal handler raised" traceback.
        The child stays up: each message tries the load again and fails its documents with that
        error kind, so nothing is lost and a model that appears later (a mounted volume) is used."""
        try:
            preload_models(self.settings)
        except DocumentError as e:
            log.error("%s; its documents fail with %s until it loads", load_failure(os.environ.get(PRELOAD_ENV, ""), e),
                      e.kind)
        STATUS.idle(resident_models(process_registry(self.settings).resident()))

    def drop_child_gauges(self, pid: int | None = None, **_: Any) -> None:
        """A child recycled or stopped: its series are marked dead for the multiprocess collector."""
        metrics.mark_dead(pid or os.getpid())


def create_app(settings: Settings | None = None, queues: list[str] | None = None,
               refused: dict[str, str] | None = None, device: str = "cpu", processes: int = 1) -> Celery:
    """The worker's app; ``queues``/``refused`` (queue -> why not) are announced in Redis once ready."""
    settings = settings or get_settings()
    ensure_schema(settings.database_url)
    app = make_celery(settings, resolve_broker_url(settings, announce=log.warning))
    register_tasks(app, settings)
    record = presence.WorkerRecord(node="", pid=os.getpid(), queues=list(queues or []), refused=dict(refused or {}),
                                   device=device, processes=processes, database=engine_url(settings.database_url),
                                   started_at=time.time())
    WorkerHooks(app, settings, record, processes).connect()
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
