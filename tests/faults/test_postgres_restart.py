"""Restart PostgreSQL mid-batch: the test's own cluster (``initdb``/``pg_ctl`` as the postgres user,
free port, socket in its own directory) is stopped with ``-m fast`` (every connection cut) while two
real workers run a batch, and started again seconds later. The workers' writes (claim, heartbeat,
outcomes) are retried with back-off through the outage: nothing is lost, nothing is stored twice,
no job is left running or queued, and no job fails because the database was away.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from docqueue.db import _engines, get_engine
from docqueue.models import Job
from tests.conftest import service_env
from tests.faults.servers import OwnPostgres, postgres_bin
from tests.faults.test_redis_restart import counts, engine_runs, write_rows
from tests.helpers import cli, cli_json, start_workers, wait_until

N = 400


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    server = OwnPostgres().init()
    yield server
    engine = _engines.pop(server.url, None)
    if engine is not None:
        engine.dispose()
    server.destroy()


def _safe_counts(url: str, batch: str) -> dict[str, int]:
    try:
        return counts(url, batch)
    except sa.exc.OperationalError:  # the test's own reads meet the outage too
        return {}


def test_postgres_restart_mid_batch_loses_and_duplicates_nothing(own_postgres: OwnPostgres, clean_redis: str,
                                                                 tmp_path: Path, start_worker) -> None:
    runs = tmp_path / "engine-runs.log"
    url = own_postgres.url
    env = service_env(clean_redis, url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="5", DOCQUEUE_HEARTBEAT_INTERVAL_S="1",
                      DOCQUEUE_HEARTBEAT_TIMEOUT_S="30", DOCQUEUE_REAPER_INTERVAL_S="2",
                      DOCQUEUE_VISIBILITY_TIMEOUT="60", DOCQUEUE_TEST_ENGINE_DELAY_S="0.1",
                      DOCQUEUE_TEST_ENGINE_LOG=str(runs))
    cli(env, "db", "upgrade")
    workers = start_workers(start_worker, env, 2, module="tests.faults.noop_worker")
    pids = [w.proc.pid for w in workers]
    batch = cli_json(env, "submit", "classify", str(write_rows(tmp_path / "a.jsonl", "a", N)), "--id-field", "id",
                     "--labels", "contract,invoice", "--json")["batch"]
    wait_until(lambda: _safe_counts(url, batch).get("succeeded", 0) >= 40, interval=0.05, timeout=120,
               what="the workers to be mid-batch")
    get_engine(url).dispose()
    own_postgres.stop()
    down_at = time.monotonic()
    time.sleep(6)  # longer than a few of Celery's jittered task retries would ride out
    own_postgres.start()
    up_at = time.monotonic()
    wait_until(lambda: _safe_counts(url, batch) == {"succeeded": N}, timeout=180,
               what=f"every document after the restart (now {_safe_counts(url, batch)})")
    recovery = time.monotonic() - up_at
    assert [w.proc.poll() for w in workers] == [None, None], "a worker exited on the restart"
    assert [w.proc.pid for w in workers] == pids
    with get_engine(url).connect() as conn:
        docs = conn.execute(sa.select(Job.document_id).where(Job.batch_id == batch)).scalars().all()
        results = conn.execute(sa.select(sa.func.count()).where(Job.batch_id == batch, Job.result.is_not(None))
                               ).scalar_one()
    assert len(docs) == len(set(docs)) == results == N
    logs = "".join(w.log() for w in workers)
    assert "retrying" in logs, "the outage never reached a worker's write: the test proved nothing"
    ran = engine_runs(runs)
    assert set(ran) == {f"a{i}" for i in range(N)}
    twice = sum(1 for n in ran.values() if n > 1)
    print(f"\npostgres restart: down {up_at - down_at:.1f} s; every job done {recovery:.1f} s after it came back; "
          f"{twice} document(s) run twice, 0 stored twice")
