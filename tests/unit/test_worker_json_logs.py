"""``DOCQUEUE_LOG_FORMAT=json`` reaches every logger Celery sets up in the worker, billiard's too.

Celery gives billiard's ``multiprocessing`` logger a plain-text handler of its own; it does not
propagate to the root logger, and ``after_setup_logger`` names only the root. It is the logger that
says a pool child died, so without this a JSON log got one plain line exactly when something went
wrong (CI saw "[…: ERROR/MainProcess] Process 'ForkPoolWorker-1' pid:… exited with 'signal 15'")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# the worker's own app and Celery's own logging set-up, as ``celery worker`` runs it before the pool
SCRIPT = """
import logging
from celery.utils.log import get_multiprocessing_logger
from workers.app import create_app

app = create_app()
app.log.setup(loglevel="INFO")
logging.getLogger("docqueue.worker").info("the root logger's line")
get_multiprocessing_logger().error("Process %r pid:%r exited with %r", "ForkPoolWorker-1", 4242, "signal 15 (SIGTERM)")
"""


@pytest.mark.e2e  # its own Python process: Celery's logging set-up changes process-wide state
def test_billiards_logger_writes_json_lines_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'dq.db'}", "REDIS_URL": "redis://127.0.0.1:1/0",
                "DOCQUEUE_DATA_DIR": str(tmp_path / "data"), "DOCQUEUE_LOG_FORMAT": "json"})
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    by_logger = {rec["logger"]: rec for rec in records}
    assert by_logger["docqueue.worker"]["message"] == "the root logger's line"
    died = by_logger["multiprocessing"]
    assert died["level"] == "ERROR"
    assert "'ForkPoolWorker-1' pid:4242 exited with 'signal 15 (SIGTERM)'" in died["message"]
