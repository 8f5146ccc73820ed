"""``docqueue worker`` runs docqueue's worker, in its own process, whatever folder it is started from
(issue 24 item 6), and Celery's own tools find an app (item 10): real processes throughout, since
the process boundary and ``sys.path`` are what is tested.

The worker consumes only the ``webhooks`` queue: no model is loaded, so the start is cheap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, service_env
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_worker_from_a_folder_holding_a_workers_package_is_docqueues(clean_redis: str, sqlite_url: str,
                                                                     tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "workers").mkdir(parents=True)
    marker = tmp_path / "foreign-code-ran"
    for name in ("__init__.py", "__main__.py", "entry.py", "app.py"):
        (project / "workers" / name).write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n")
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_WEBHOOK_SECRET=SECRET, PYTHONPATH=str(ROOT))
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        # python -m puts the current folder first on sys.path, as `docqueue` started from there would see it
        proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "worker", "--queues", "webhooks",
                                 "--pool", "solo"], env=env, cwd=project, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: " ready." in log.read_text(errors="replace") or proc.poll() is not None, timeout=180,
                   what="the worker to be ready")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert not marker.exists(), marker.read_text()

        # Celery's own tools: `celery -A docqueue ...` finds an app and sees this worker's queue
        inspect = subprocess.run([sys.executable, "-m", "celery", "-A", "docqueue", "inspect", "active_queues",
                                  "--json", "--timeout", "5"], env=env, cwd=ROOT, capture_output=True, text=True,
                                 timeout=120)
        assert inspect.returncode == 0, inspect.stdout + inspect.stderr
        replies = json.loads(inspect.stdout.strip().splitlines()[-1])
        queues = {q["name"] for reply in replies.values() for q in reply}
        assert queues == {"webhooks"}, replies
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert not marker.exists()


def test_python_m_docqueue_is_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    proc = subprocess.run([sys.executable, "-m", "docqueue", "--help"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: docqueue ") and "submit" in proc.stdout
