"""Flower counts *tasks*, and a docqueue task (one micro-batch) succeeds even when every document
in it failed: the task's result carries the documents' outcomes, so Flower's Result column (the
``result`` of the ``task-succeeded`` event, captured here with Celery's own receiver from a real
worker) says how many failed and why."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tests.conftest import service_env
from tests.helpers import cli_json, wait_until
from tests.integration.test_task_events import EventLog, event_log

__all__ = ["event_log"]  # the fixture, imported for pytest


def test_task_result_shows_document_outcomes(event_log: EventLog, clean_redis: str, sqlite_url: str,
                                             tmp_path: Path, start_worker: Any) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    start_worker(env)
    wait_until(lambda: event_log.of_type("worker-heartbeat"), timeout=30, what="a worker heartbeat")
    docs = []
    for i in range(3):
        docs.append(tmp_path / f"note{i}.txt")
        docs[-1].write_text(f"Please send me invoice {i} by Friday.")
    bad = cli_json(env, "submit", "classify", *map(str, docs), "--labels", "invoice,news",
                   "--model", str(tmp_path / "no-such-model"), "--wait", "--timeout", "120", "--json", exit_code=1)
    assert bad["status"]["failed"] == 3
    (event,) = wait_until(lambda: event_log.of_type("task-succeeded"), timeout=30, what="task-succeeded")
    result = ast.literal_eval(event["result"])  # Celery sends the return value's repr
    assert result == {"stored": 3, "jobs": 3, "succeeded": 0, "failed": 3,
                      "failed_by_kind": {"model_not_allowed": 3}}
