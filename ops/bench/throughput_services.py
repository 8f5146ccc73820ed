"""What the throughput benchmark runs on: a Redis DB number of its own, worker processes it starts
and stops, and the database it polls for finished jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Job

ROOT = Path(__file__).resolve().parents[2]
#: The key the test suite locks Redis DB numbers with; the benchmark takes part in the same scheme.
LOCK_KEY = "docqueue:test-db-lock:{n}"


@contextmanager
def redis_db(host: str) -> Iterator[str]:
    """``redis://host/N`` for a DB number nobody else (tests, another benchmark) holds, flushed
    before and after."""
    admin = redis.Redis.from_url(f"{host}/0", socket_connect_timeout=3)
    admin.ping()
    token = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for n in range(1, 16):
        if admin.set(LOCK_KEY.format(n=n), token, nx=True, ex=3 * 3600):
            break
    else:
        raise RuntimeError("all Redis DB numbers 1-15 are held (tests or another benchmark are running)")
    url = f"{host}/{n}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        if admin.get(LOCK_KEY.format(n=n)) == token.encode():
            admin.delete(LOCK_KEY.format(n=n))


class Process:
    """A worker process of the benchmark's own, in its own process group (stopped as a whole)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 300) -> Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def python_argv(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


def service_env(redis_url: str, database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"REDIS_URL": redis_url, "DATABASE_URL": database_url, "DOCQUEUE_DATA_DIR": str(data_dir),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "ops" / "bench")])})
    env.update(extra)
    return env


def wait_finished(engine: Engine, batch_id: str, total: int, timeout: float, cap_s: float | None = None,
                  poll_s: float = 0.05) -> tuple[int, float]:
    """Wait until every job of the batch is finished, or ``cap_s`` seconds have passed; returns how
    many were finished and the epoch time the last of them was stored (its ``finished_at``,
    written by the worker in the same transaction as its result)."""
    started = time.monotonic()
    finished = col(Job.status).in_(("succeeded", "failed"))
    query = sa.select(sa.func.count(), sa.func.max(col(Job.finished_at))).where(col(Job.batch_id) == batch_id,
                                                                              finished)
    while True:
        with engine.connect() as conn:
            done, last = conn.execute(query).one()
        elapsed = time.monotonic() - started
        if done >= total or (cap_s is not None and elapsed > cap_s and done):
            return done, as_epoch(last)
        if elapsed > timeout:
            raise RuntimeError(f"batch {batch_id}: {done} of {total} jobs finished after {timeout:g}s")
        time.sleep(poll_s)


def wait_quiet(engine: Engine, batch_id: str, quiet_s: float = 1.5, timeout: float = 300) -> None:
    """Wait until no job of the batch has finished for ``quiet_s`` (in-flight work drained)."""
    query = sa.select(sa.func.count()).where(col(Job.batch_id) == batch_id,
                                             col(Job.status).in_(("succeeded", "failed")))
    deadline, last_count, last_change = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            count = conn.execute(query).scalar_one()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return
        time.sleep(0.1)


def failures(engine: Engine, batch_id: str) -> list[tuple[str | None, str | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            sa.select(col(Job.error_kind), col(Job.error_message))
            .where(col(Job.batch_id) == batch_id, col(Job.status) == "failed").limit(3)).all()]


def as_epoch(value: datetime | str) -> float:
    if isinstance(value, str):  # SQLite hands back text for an aggregate
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
