"""Each worker process says in Redis what it holds and runs (``docqueue.presence.ProcessRecord``).

The main process's record (queues, device) is not enough for ``docqueue top``: in a prefork worker
the models live in the children and only a child knows how many jobs it is running. So each process
that runs tasks keeps its own short record: written when a message starts and ends (two SETs per
message, next to a database transaction per message) and refreshed by a thread so it outlives idle
spells, with an expiry so a killed child's record goes away by itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery

from docqueue import presence

log = logging.getLogger(__name__)

#: The worker's node name, exported by ``python -m workers`` so its children know it (Celery does
#: not hand it to ``worker_process_init``).
NODE_ENV = "DOCQUEUE_NODE_NAME"


class ProcessStatus:
    """This process's record; :meth:`start` after the fork, then :meth:`running` / :meth:`idle`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: Celery | None = None
        self._conn: Any = None
        self._pid = 0
        self._resident: list[str] = []
        self._in_flight = 0
        self._batch: str | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, app: Celery) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._app, self._pid, self._conn = app, os.getpid(), None  # never the parent's socket
            self._in_flight, self._batch = 0, None
            self._stopped = threading.Event()
            self._thread = threading.Thread(target=self._refresh, name="docqueue-process-status", daemon=True)
            self._thread.start()

    @property
    def node(self) -> str:
        return os.environ.get(NODE_ENV) or f"docqueue-{os.getppid()}"

    def record(self) -> presence.ProcessRecord:
        return presence.ProcessRecord(node=self.node, pid=os.getpid(), resident=list(self._resident),
                                      in_flight=self._in_flight, batch=self._batch, updated_at=time.time())

    def _client(self) -> Any:
        # one broker connection per process, kept (kombu's, so rediss:// TLS settings apply), opened
        # after the fork; a write per message must not pay for a new connection and its PING
        if self._conn is None:
            assert self._app is not None
            self._conn = self._app.connection_for_write()
        return self._conn.default_channel.client

    def _write(self) -> None:
        if self._app is None or self._pid != os.getpid():
            return
        with self._lock:
            try:
                presence.publish_process(self._client(), self.record())
            except Exception:  # a status line is never worth failing a message for
                log.debug("could not write this process's status to Redis", exc_info=True)
                self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.release()
            except Exception:
                log.debug("closing the status connection failed", exc_info=True)

    def _refresh(self) -> None:
        while not self._stopped.wait(presence.RECORD_TTL_S / 3):
            self._write()

    def running(self, jobs: int, batch: str | None, resident: list[str]) -> None:
        self._in_flight, self._batch, self._resident = jobs, batch, resident
        self._write()

    def idle(self, resident: list[str]) -> None:
        self._in_flight, self._batch, self._resident = 0, None, resident
        self._write()

    def stop(self) -> None:
        self._stopped.set()
        if self._app is not None and self._pid == os.getpid():
            with self._lock:
                try:
                    presence.withdraw_process(self._client(), self.node, self._pid)
                except Exception:
                    log.debug("could not withdraw this process's status", exc_info=True)
                self._drop()


#: One per process (re-initialised by :meth:`ProcessStatus.start` after a fork).
STATUS = ProcessStatus()


def resident_models(engines: Any) -> list[str]:
    """``task:model`` of each resident engine key ``(task, spec, revision)``."""
    return sorted(f"{task}:{spec}" for task, spec, _rev in engines)
