"""Celery task events (what Flower and ``celery events`` show) are on by default, and
DOCQUEUE_TASK_EVENTS=false turns them off: captured with Celery's own event receiver from a real
worker on the real Redis while a real submission runs.

With events off the worker still sends its heartbeats (Celery's Events step keeps the ``worker``
group), so the "off" test sees the receiver working and only task events missing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docqueue.queue import make_celery
from docqueue.settings import get_settings
from tests.conftest import NOOP_WORKER, service_env
from tests.helpers import cli, wait_until


class EventLog:
    """Every event seen on the broker's celeryev fanout, captured by a Celery ``Receiver`` thread."""

    def __init__(self, redis_url: str) -> None:
        self.app = make_celery(get_settings(redis_url=redis_url), redis_url)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._conn = self.app.connection_for_read()
        self.receiver = self.app.events.Receiver(self._conn, handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def _run(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def of_type(self, prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if str(e.get("type", "")).startswith(prefix)]

    def stop(self) -> None:
        self.receiver.should_stop = True  # checked once a second by kombu's ConsumerMixin
        self.thread.join(10)
        self._conn.release()


@pytest.fixture
def event_log(clean_redis: str) -> Iterator[EventLog]:
    log = EventLog(clean_redis)
    log.thread.start()
    yield log
    log.stop()


def _submit(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "note.txt"
    doc.write_text("Please send me the invoice for March by Friday.")
    cli(env, "submit", "classify", str(doc), "--labels", "invoice,news", "--wait", "--timeout", "120", "--json")


def test_task_events_are_sent_by_default(event_log: EventLog, clean_redis: str, sqlite_url: str, tmp_path: Path,
                                         start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    start_worker(env, module=NOOP_WORKER)
    wait_until(lambda: event_log.of_type("worker-heartbeat"), timeout=30, what="a worker heartbeat")
    _submit(env, tmp_path)

    received = wait_until(lambda: event_log.of_type("task-received"), timeout=30, what="task-received")
    succeeded = wait_until(lambda: event_log.of_type("task-succeeded"), timeout=30, what="task-succeeded")
    sent = wait_until(lambda: event_log.of_type("task-sent"), timeout=30, what="task-sent (from submit)")
    assert {e["name"] for e in received} == {"docqueue.classify"}
    assert {e["name"] for e in sent} == {"docqueue.classify"}
    assert {e["uuid"] for e in succeeded} == {e["uuid"] for e in received} == {e["uuid"] for e in sent}
    assert event_log.of_type("task-started")


def test_docqueue_task_events_false_turns_them_off(event_log: EventLog, clean_redis: str, sqlite_url: str,
                                                   tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_TASK_EVENTS="false")
    start_worker(env, module=NOOP_WORKER)
    wait_until(lambda: event_log.of_type("worker-heartbeat"), timeout=30, what="a worker heartbeat")
    _submit(env, tmp_path)  # --wait returned: the task has run
    seen = len(event_log.of_type("worker-heartbeat"))
    # two more heartbeats (2 s apart) after the task finished: the receiver was listening all along
    wait_until(lambda: len(event_log.of_type("worker-heartbeat")) >= seen + 2, timeout=30,
               what="later heartbeats")
    assert event_log.of_type("task-") == []
