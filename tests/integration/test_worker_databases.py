"""Workers on another database than the producer, on one Redis: ``submit`` warns before storing,
and ``--wait`` ends as soon as a worker refuses the batch's message, with the refusal, instead of
sitting at 0/N until its timeout. A real (noop-engine) worker on its own SQLite file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from docqueue import presence
from tests.conftest import service_env
from tests.helpers import cli

pytestmark = pytest.mark.integration


def test_submit_warns_and_wait_ends_on_the_refusal(clean_redis: str, tmp_path: Path, start_worker: Any) -> None:
    worker_env = service_env(clean_redis, f"sqlite:///{tmp_path / 'worker.db'}", tmp_path)
    worker = start_worker(worker_env, module="tests.faults.noop_worker")
    # the banner shows the password-less broker URL as it is, not as `redis://:**@`
    assert clean_redis.split("//")[1] in worker.log() and ":**@" not in worker.log()
    mine = service_env(clean_redis, f"sqlite:///{tmp_path / 'producer.db'}", tmp_path)
    doc = tmp_path / "a.txt"
    doc.write_text("Please pay the invoice.")
    began = time.monotonic()
    done = cli(mine, "submit", "classify", str(doc), "--labels", "a,b", "--wait", "--timeout", "120", check=False)
    assert time.monotonic() - began < 60, "--wait sat until its timeout"
    assert done.returncode == 3, done.stderr
    assert "worker.db" in done.stderr and "they will refuse its messages" in done.stderr  # the warning at submit
    assert "stopped waiting: a worker refused 1 message(s)" in done.stderr and "unknown_jobs" in done.stderr


def test_same_database_under_another_spelling_is_not_a_warning() -> None:
    cover = presence.QueueCoverage("classify", ["w1"], {}, {"w1": "postgresql+psycopg://dq:***@pg:5432/docqueue"})
    assert cover.database_warning("postgresql://dq:secret@pg:5432/docqueue") is None
    warning = cover.database_warning("postgresql://dq:secret@pg:5432/other")
    assert warning is not None and "secret" not in warning and "w1" in warning
