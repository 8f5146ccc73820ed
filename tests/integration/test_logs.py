"""``DOCQUEUE_LOG_FORMAT=json``: a real prefork worker and the producer write one JSON object per line,
with batch and job ids, without progress bars, passwords or Celery's SecurityWarning.

Celery warns (``celery.platforms.check_privileges``) when the worker runs as root, or with a group
id that has no entry in /etc/group; with pickle accepted it would refuse to start as root at all.
The JSON-only configuration runs quietly as an ordinary user, which is how the image runs it
(``USER docqueue``). Tests here run as root, so the worker is started in a user namespace that maps
this user to ``nobody:nogroup``: an ordinary, unprivileged identity with a real group entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, WorkerProcess, service_env
from tests.helpers import cli

SECRET = "s3cret-pw-4711"
AS_NOBODY = ("unshare", "--user", "--map-user=65534", "--map-group=65534")


def _userns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import os; print(os.getuid(), os.getgid())"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.split() == ["65534", "65534"]


class UnprivilegedWorker(WorkerProcess):
    """``python -m workers`` as nobody:nogroup (a user namespace; no privileges are gained)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path  # stderr: the log
        self._log = log_path.open("ab")
        self.stdout_path = log_path.with_suffix(".stdout")
        self._stdout = self.stdout_path.open("ab")
        self.proc = subprocess.Popen(
            [*AS_NOBODY, sys.executable, "-m", "workers", "--queues", "classify", "--pool", "prefork",
             "--concurrency", "1", "--loglevel", "info"],
            env=env, stdout=self._stdout, stderr=self._log, cwd=ROOT, start_new_session=True)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the main process alone, as ``docker stop`` and Kubernetes send it to PID 1: the
        main process stops its pool children itself. (Signalled with the whole group, a child can die
        of the signal first, and the main process rightly logs that as an ERROR.)"""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        super().stop(timeout)  # the group, if anything is left
        self._stdout.close()


@pytest.mark.e2e  # its own CLI process
def test_json_logs_of_worker_and_producer(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    if not _userns_works():
        pytest.skip("user namespaces (unshare --user) are not available to run the worker unprivileged")
    # a password in the broker URL: Redis' default user has no password here, so any one is accepted
    url = clean_redis.replace("redis://", f"redis://default:{SECRET}@")
    env = service_env(url, sqlite_url, tmp_path, OMP_NUM_THREADS="1", DOCQUEUE_LOG_FORMAT="json")
    worker = UnprivilegedWorker(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        docs = []
        for i in range(3):
            docs.append(tmp_path / f"d{i}.txt")
            docs[-1].write_text(f"Document {i}: the parties agree to keep the terms confidential.")
        submit = cli(env, "submit", "classify", *map(str, docs), "--labels", "confidentiality,payment", "--wait",
                     "--json")
        batch = json.loads(submit.stdout)["batch"]
    finally:
        worker.stop()
    text = worker.log()
    assert SECRET not in text and SECRET not in submit.stderr
    # Celery's signal handler writes this one notice to the stdout fd itself (os.write, no logging);
    # the log (stderr) says the same as JSON
    assert worker.stdout_path.read_text().strip() == "worker: Warm shutdown (MainProcess)"

    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(rec) for rec in lines)
    assert any(rec["message"].endswith(" ready.") for rec in lines)
    assert "SecurityWarning" not in text and "superuser" not in text
    # no progress bar (tqdm via redirected stderr) became a warning, and nothing else warned either
    assert not [rec for rec in lines if rec["level"] in ("WARNING", "ERROR", "CRITICAL")], text[-3000:]
    assert "it/s" not in text and "Loading weights" not in text
    assert any(rec["message"] == "docqueue worker: warm shutdown (SIGTERM)" for rec in lines)

    stored = [rec for rec in lines if rec["message"].startswith("stored 3 outcome(s)")]
    assert len(stored) == 1
    assert stored[0]["batch_id"] == batch and len(stored[0]["job_ids"]) == 3
    assert stored[0]["task_name"] == "docqueue.classify" and stored[0]["task_id"]

    # the producer's own log line names the batch too (stderr; stdout keeps the --json result)
    producer = [json.loads(line) for line in submit.stderr.splitlines() if line.startswith("{")]
    [submitted] = [rec for rec in producer if rec["logger"] == "docqueue.submit"]
    assert submitted["batch_id"] == batch and submitted["level"] == "INFO"
    assert "3 documents" in submitted["message"]


def test_text_logs_stay_the_default(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    doc = tmp_path / "a.txt"
    doc.write_text("hello there, a short note")
    out = cli(env, "submit", "classify", str(doc), "--labels", "a,b", "--json")
    assert not [line for line in out.stderr.splitlines() if line.startswith("{")]
