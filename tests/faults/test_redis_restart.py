"""Restart Redis mid-batch: the test's own ``redis-server --appendonly yes`` on a free port is shut
down (``SHUTDOWN``: its append-only file keeps the queue) and started again on the same directory
while two real workers run a batch on PostgreSQL. The workers reconnect and finish; every document
ends with exactly one outcome.

During the outage, a submit that was mid-way stops with one line and exit status 4 (its stored jobs
stay ``pending``, and ``docqueue retry`` after the restart runs them), and a submit started while
Redis is down fails at its pre-flight check with one line, exit status 4 and nothing stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from docqueue.db import get_engine
from docqueue.models import Batch, Job
from tests.conftest import ROOT, service_env
from tests.faults.servers import REDIS_SERVER, AofRedis
from tests.helpers import cli, cli_json, start_workers, wait_until

N = 400


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} not installed")
    server = AofRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def counts(url: str, batch: str) -> dict[str, int]:
    with get_engine(url).connect() as conn:
        return dict(conn.execute(sa.select(Job.status, sa.func.count()).where(Job.batch_id == batch)
                                 .group_by(Job.status)).all())


def other_batches(url: str, known: set[str]) -> dict[str, int]:
    """Batches not in ``known``, with their job counts."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(sa.select(Batch.id, sa.func.count(Job.id)).join(Job, Job.batch_id == Batch.id, isouter=True)
                            .group_by(Batch.id)).all()
    return {b: n for b, n in rows if b not in known}


def write_rows(path: Path, prefix: str, n: int) -> Path:
    # the first word names the document: the noop engine logs it, so runs per document are counted
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": f"{prefix}{i} invoice number {i}, "
                                        f"amount due ${i}.00 within 30 days."}) + "\n" for i in range(n)))
    return path


def engine_runs(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def test_redis_restart_mid_batch_loses_nothing(aof_redis: AofRedis, pg_url: str, tmp_path: Path,
                                               start_worker) -> None:
    runs = tmp_path / "engine-runs.log"
    env = service_env(aof_redis.url, pg_url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="5", DOCQUEUE_HEARTBEAT_INTERVAL_S="1",
                      DOCQUEUE_HEARTBEAT_TIMEOUT_S="10", DOCQUEUE_REAPER_INTERVAL_S="2",
                      DOCQUEUE_VISIBILITY_TIMEOUT="20", DOCQUEUE_TEST_ENGINE_DELAY_S="0.1",
                      DOCQUEUE_TEST_ENGINE_LOG=str(runs))
    cli(env, "db", "upgrade")
    workers = start_workers(start_worker, env, 2, module="tests.faults.noop_worker")
    pids = [w.proc.pid for w in workers]
    batch = cli_json(env, "submit", "classify", str(write_rows(tmp_path / "a.jsonl", "a", N)), "--id-field", "id",
                     "--labels", "contract,invoice", "--json")["batch"]
    wait_until(lambda: counts(pg_url, batch).get("succeeded", 0) >= 40, interval=0.05, timeout=120,
               what="the workers to be mid-batch")

    # a second submit, stopped mid-way by the outage: small chunks, so it is still storing when Redis goes
    slow = {**env, "DOCQUEUE_SUBMIT_CHUNK_SIZE": "20", "DOCQUEUE_BATCH_MAX_DOCS": "20"}
    midway = subprocess.Popen([sys.executable, "-m", "producer.cli", "submit", "classify",
                               str(write_rows(tmp_path / "b.jsonl", "b", 5000)), "--id-field", "id",
                               "--labels", "contract,invoice"], env=slow, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: any(n >= 40 for n in other_batches(pg_url, {batch}).values()), interval=0.02, timeout=120,
               what="the second submit to have stored its first chunks")
    aof_redis.shutdown()
    down_at = time.monotonic()
    assert counts(pg_url, batch).get("succeeded", 0) < N, "the batch finished before the restart"

    # a submit while Redis is down: one line, exit 4, nothing stored
    before = set(other_batches(pg_url, {batch}))
    refused = cli(env, "submit", "classify", str(tmp_path / "a.jsonl"), "--id-field", "id", "--labels", "x,y",
                  check=False, timeout=120)
    assert refused.returncode == 4, refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "nothing was stored" in refused.stderr
    assert set(other_batches(pg_url, {batch})) == before

    _, err = midway.communicate(timeout=120)
    assert midway.returncode == 4, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("docqueue: broker failed after storing"), err
    (second,) = other_batches(pg_url, {batch})
    assert f"docqueue retry {second}" in err
    assert counts(pg_url, second).get("pending", 0) > 0, counts(pg_url, second)

    time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))  # the workers see a real outage
    aof_redis.start()
    up_at = time.monotonic()
    retried = cli_json(env, "retry", second, "--json")
    assert retried["pending"] > 0, retried
    wait_until(lambda: counts(pg_url, batch) == {"succeeded": N}, timeout=180,
               what="every document of the batch after the restart")
    stored = sum(counts(pg_url, second).values())
    wait_until(lambda: counts(pg_url, second) == {"succeeded": stored}, timeout=180,
               what="the interrupted submit's jobs after retry")
    recovery = time.monotonic() - up_at
    assert [w.proc.poll() for w in workers] == [None, None], "a worker exited on the restart"
    assert [w.proc.pid for w in workers] == pids
    with get_engine(pg_url).connect() as conn:
        jobs = conn.execute(sa.select(Job.document_id).where(Job.batch_id.in_([batch, second]))).scalars().all()
    assert len(jobs) == len(set(jobs)) == N + stored  # one job, one stored outcome, per document
    ran = engine_runs(runs)
    assert {d for d in ran if d.startswith("a")} == {f"a{i}" for i in range(N)}
    print(f"\nredis restart: down {up_at - down_at:.1f} s; every job done {recovery:.1f} s after it came back; "
          f"{sum(1 for n in ran.values() if n > 1)} document(s) run twice (at-least-once), 0 stored twice")
