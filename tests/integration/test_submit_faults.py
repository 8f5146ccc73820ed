"""What ``submit`` says and leaves behind when the database fails under it (issue 23 item 10), when a
service refuses any command (item 13), and the exit codes a script acts on (issue 24 item 13).

In-process (``CliRunner``) against the real Redis and real databases: the faults are real database
errors, raised by a trigger the test installs (SQLite's ``RAISE``, a PL/pgSQL exception), not mocks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from docqueue import db
from docqueue.models import ScheduleRun
from producer.cli import main
from producer.submission import EXIT_ALL_FAILED, EXIT_SOME_FAILED, EXIT_UNAVAILABLE
from tests.conftest import ROOT, service_env
from tests.helpers import wait_until
from tests.integration.test_broker_failures import PASSWORD, REDIS_SERVER, OwnRedis, _free_port

pytestmark = pytest.mark.integration

SECRET = "Confidential-Clause-7731"  # in every document: must appear in no error


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=True)


def _documents(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:03}.txt").write_text(f"Document {i}. {SECRET} applies to invoice {i}.", encoding="utf-8")
    return folder


def _fail_inserts_from(database_url: str, position: int) -> None:
    """A real database error for every document stored at ``position`` or later (a full disk, as the
    database reports it), via a trigger."""
    engine = db.get_engine(database_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(sa.text(f"CREATE TRIGGER disk_full BEFORE INSERT ON document WHEN NEW.position >= {position} "
                                 "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
        else:
            conn.execute(sa.text("CREATE FUNCTION disk_full() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                                 "'could not extend file: No space left on device'; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text(f"CREATE TRIGGER disk_full BEFORE INSERT ON document FOR EACH ROW WHEN "
                                 f"(NEW.position >= {position}) EXECUTE FUNCTION disk_full()"))


def _count(database_url: str, table: str) -> int:
    with db.get_engine(database_url).connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def protected_redis() -> Iterator[OwnRedis]:
    """A redis-server of the test's own that wants a password."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} not installed")
    server = OwnRedis(_free_port(), "--requirepass", PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def env(database_url: str, clean_redis: str, tmp_path: Path) -> dict[str, str]:
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_SUBMIT_CHUNK_SIZE="10")
    assert _run(env, "db", "upgrade").exit_code == 0
    return env


def test_a_database_failure_mid_submit_is_one_line_with_the_resume_command(env: dict[str, str], database_url: str,
                                                                          tmp_path: Path) -> None:
    _fail_inserts_from(database_url, 10)
    result = _run(env, "submit", "classify", str(_documents(tmp_path / "in", 25)), "--labels", "a,b")
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("docqueue:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    batch = re.search(r"batch ([0-9a-f]{32})", lines[0])
    assert batch and f"docqueue retry {batch.group(1)}" in lines[0], lines[0]
    assert "storing 10 documents" in lines[0] and ("disk is full" in lines[0] or "No space left" in lines[0])
    assert SECRET not in result.output and "INSERT" not in result.output
    assert (_count(database_url, "batch"), _count(database_url, "document")) == (1, 10)


def test_a_database_failing_on_the_first_chunk_leaves_no_empty_batch(env: dict[str, str], database_url: str,
                                                                     tmp_path: Path) -> None:
    _fail_inserts_from(database_url, 0)
    folder = _documents(tmp_path / "in", 5)
    for _ in range(2):  # each retry of the user's: still no batch listed as finished
        result = _run(env, "submit", "classify", str(folder), "--labels", "a,b")
        assert result.exit_code == EXIT_UNAVAILABLE, result.output
        assert "nothing was stored" in result.stderr and SECRET not in result.output
    assert _count(database_url, "batch") == 0
    assert "no batches" in _run(env, "batches").output.lower() or _count(database_url, "batch") == 0


def test_submit_of_nothing_readable_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(env, "submit", "classify", str(tmp_path / "missing-folder"), "--labels", "a,b")
    assert result.exit_code == EXIT_ALL_FAILED, result.output
    assert "none of the 1 document(s) given could be read" in result.stderr
    # --wait: every document failed (here, unreadable at submit), so no worker is needed to know it
    waited = _run(env, "submit", "classify", str(tmp_path / "missing-folder"), "--labels", "a,b", "--wait", "--json")
    assert waited.exit_code == EXIT_ALL_FAILED, waited.output


def test_an_empty_glob_names_no_batch_and_stores_none(env: dict[str, str], database_url: str, tmp_path: Path) -> None:
    folder = _documents(tmp_path / "in", 2)
    result = _run(env, "submit", "classify", str(folder), "--include", "*.pdf", "--labels", "a,b")
    assert result.exit_code == 2 and "no documents found" in result.stderr, result.output
    assert not re.search(r"^batch ", result.stderr, re.M)
    assert _count(database_url, "batch") == 0


@pytest.mark.parametrize(("fault", "args"), [("password", ["workers"]), ("password", ["dlq", "list"]),
                                             ("password", ["top", "--once"]),
                                             ("database", ["batches"]), ("database", ["schedule", "list"]),
                                             ("database", ["status", "0190b2a4-0000-7000-8000-000000000000"])])
def test_a_wrong_redis_password_or_a_database_down_is_one_line(fault: str, args: list[str], clean_redis: str,
                                                               protected_redis: OwnRedis, tmp_path: Path) -> None:
    if fault == "password":  # a redis-server of the test's own, with requirepass
        env = service_env(f"redis://:wrong-password@127.0.0.1:{protected_redis.port}/0",
                          f"sqlite:///{tmp_path / 'd.db'}", tmp_path)
    else:
        env = service_env(clean_redis, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", tmp_path)
    result = _run(env, *args)
    assert result.exit_code == 1, (args, result.output)
    assert isinstance(result.exception, SystemExit), (args, repr(result.exception))  # not a traceback
    out = result.stderr.strip().splitlines()
    assert len(out) == 1, (args, result.output)
    assert ("Redis refused the credentials" if fault == "password" else "the database failed") in out[0], out
    assert "wrong-password" not in result.output


def test_docqueue_worker_without_the_worker_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, clean_redis: str,
                                                              tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without torch gives: ImportError
    result = _run(service_env(clean_redis, f"sqlite:///{tmp_path / 'd.db'}", tmp_path), "worker", "--pool", "solo")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "pip install 'docqueue[worker]'" in result.stderr


def test_watch_run_again_under_its_name_goes_on(env: dict[str, str], database_url: str, tmp_path: Path) -> None:
    """Issue 23 item 11: the documented resume (`docqueue watch NAME` again) crashed with
    ``values() got multiple values for keyword argument 'paused'``. Two real watch processes in turn."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    for labels in ("a,b", "c,d"):
        proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "watch", str(folder), "--name", "my-watch",
                                 "classify", "--labels", labels, "--max-interval", "0.3"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            wait_until(lambda mark=f'"{labels[0]}"', p=proc: mark in _params(database_url) or p.poll() is not None,
                       timeout=60, what="the watch's schedule row")
            assert proc.poll() is None, proc.communicate()[1]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err.decode(), err.decode()[-2000:]
    assert _count(database_url, "schedule") == 1 and '"c"' in _params(database_url)


def _params(database_url: str) -> str:
    with db.get_engine(database_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT params FROM schedule")).scalars().all()
    return json.dumps([json.loads(p) if isinstance(p, str) else p for p in rows])


def test_wait_exits_5_when_some_documents_failed(clean_redis: str, sqlite_url: str, tmp_path: Path,
                                                 start_worker: Any) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    start_worker(env, module="tests.faults.noop_worker")  # a real worker, no model work
    good = _documents(tmp_path / "in", 2)
    result = _run(env, "submit", "classify", str(good), str(tmp_path / "missing.txt"), "--labels", "a,b", "--wait",
                  "--timeout", "120", "--json")
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    status = json.loads(result.stdout.strip().splitlines()[-1])["status"]
    assert (status["succeeded"], status["failed"]) == (2, 1), status


def test_schedule_list_keeps_an_error_in_view_behind_idle_runs(env: dict[str, str], database_url: str,
                                                              tmp_path: Path) -> None:
    """Issue 23 item 12: after a run's error, the looks that found nothing new hid it in `schedule list`."""
    folder = _documents(tmp_path / "in", 1)
    assert _run(env, "schedule", "add", "nightly", "--every", "1h", "classify", str(folder), "--labels",
                "a,b").exit_code == 0
    engine = db.get_engine(database_url)
    with engine.begin() as conn:
        schedule_id = conn.execute(sa.text("SELECT id FROM schedule")).scalar_one()
        for n, (outcome, detail) in enumerate((("submitted", None), ("error", "broker down; nothing was stored"),
                                               ("nothing_new", None))):
            at = datetime(2026, 12, 1, n, tzinfo=timezone.utc)
            run = ScheduleRun(id=f"run{n}", schedule_id=schedule_id, due_at=at, fired_at=at, trigger="schedule",
                              outcome=outcome, detail=detail)
            conn.execute(sa.insert(ScheduleRun).values(**run.model_dump()))
    listed = json.loads(_run(env, "schedule", "list", "--json").stdout)
    assert listed["last_run"]["outcome"] == "nothing_new"
    assert listed["last_error"]["detail"] == "broker down; nothing was stored", listed
    table = CliRunner(env=env).invoke(main, ["schedule", "list"], terminal_width=200).output
    assert "error at" in table, table
