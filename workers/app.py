"""The worker's Celery application and its process start-up hooks."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from sqlalchemy.engine import make_url

from docqueue.broker import resolve_broker_url
from docqueue.db import dispose_after_fork, ensure_schema, get_engine
from docqueue.queue import make_celery
from docqueue.settings import Settings, get_settings
from workers.device import configure_threads
from workers.reaper import Reaper
from workers.registry import process_registry
from workers.tasks import register_tasks

log = logging.getLogger(__name__)

#: Task types whose models every worker process loads at start (set by ``python -m workers``).
PRELOAD_ENV = "DOCQUEUE_PRELOAD"
PROCESSES_ENV = "DOCQUEUE_PROCESSES"


def preload_models(settings: Settings) -> None:
    """Load this process's models now, so the first message does not pay for it."""
    configure_threads(int(os.environ.get(PROCESSES_ENV, "1")))
    tasks = [t for t in os.environ.get(PRELOAD_ENV, "").split(",") if t]
    process_registry(settings).preload(tasks)


def engine_url(database_url: str) -> str:
    """The database URL with its password hidden, for the start-up line."""
    return make_url(database_url).render_as_string(hide_password=True)


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    ensure_schema(settings.database_url)
    app = make_celery(settings, resolve_broker_url(settings, announce=log.warning))
    register_tasks(app, settings)

    reaper = Reaper(get_engine(settings.database_url), app, settings)

    @worker_ready.connect(weak=False)
    def _main_ready(**_: Any) -> None:
        # the main process (not the children) looks for jobs whose worker died
        log.info("docqueue worker: database %s; reaper every %.0f s (heartbeat timeout %.0f s)",
                 engine_url(settings.database_url), settings.reaper_interval_s, settings.heartbeat_timeout_s)
        reaper.start()

    @worker_shutdown.connect(weak=False)
    def _main_stop(**_: Any) -> None:
        reaper.stopped.set()

    @worker_process_init.connect(weak=False)
    def _child_start(**_: Any) -> None:
        # Runs in each prefork child right after the fork: fresh DB connections, then the model.
        dispose_after_fork()
        preload_models(settings)

    return app
