"""SIGKILL the worker's whole process tree, three times, during a 1,000-document batch on
PostgreSQL: every document ends with exactly one outcome, none is left running or queued. The jobs
the dead worker was running come back through the heartbeat reaper in seconds (measured); a message
it had reserved but not started yet has no heartbeat and comes back through Redis' visibility
timeout, set to 30 s here (safe: a re-delivered message of a job still running elsewhere is left
alone, its heartbeat is fresh)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import sqlalchemy as sa

from docqueue.db import get_engine
from docqueue.models import Job
from tests.conftest import service_env
from tests.helpers import cli, cli_json, wait_until

N = 1000


def _counts(url: str, batch: str) -> dict[str, int]:
    with get_engine(url).connect() as conn:
        return dict(conn.execute(sa.select(Job.status, sa.func.count()).where(Job.batch_id == batch)
                                 .group_by(Job.status)).all())


def _ids(url: str, batch: str, status: str) -> set[str]:
    with get_engine(url).connect() as conn:
        return set(conn.execute(sa.select(Job.id).where(Job.batch_id == batch, Job.status == status)).scalars())


def _held_by_dead(url: str, batch: str) -> set[str]:
    """Running jobs on their first attempt: after a kill, only the dead worker's."""
    with get_engine(url).connect() as conn:
        return set(conn.execute(sa.select(Job.id).where(Job.batch_id == batch, Job.status == "running",
                                                        Job.attempts == 1)).scalars())


def test_three_kills_lose_nothing_and_recover_in_seconds(pg_url: str, clean_redis: str, tmp_path: Path,
                                                        start_worker) -> None:
    env = service_env(clean_redis, pg_url, tmp_path, DOCQUEUE_HEARTBEAT_INTERVAL_S="1",
                      DOCQUEUE_HEARTBEAT_TIMEOUT_S="5", DOCQUEUE_REAPER_INTERVAL_S="2",
                      DOCQUEUE_BATCH_MAX_DOCS="10", DOCQUEUE_VISIBILITY_TIMEOUT="30")
    cli(env, "db", "upgrade")
    rows = tmp_path / "rows.jsonl"
    clause = "The Supplier shall deliver the goods described in Schedule {i} within {d} days of the order. "
    # ~200 tokens each: long enough that the batch is still running after three kills and restarts
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": clause.format(i=i, d=i % 60) * 8}) + "\n"
                            for i in range(N)))
    batch = cli_json(env, "submit", "classify", str(rows), "--id-field", "id", "--labels", "contract,invoice",
                     "--json")["batch"]
    recoveries: list[float] = []
    worker = start_worker(env, pool="prefork", concurrency=2)
    for _ in range(8):  # three kills that land mid-batch; one between two messages does not count
        if len(recoveries) == 3:
            break
        before = _counts(pg_url, batch).get("succeeded", 0)
        wait_until(lambda b=before: _counts(pg_url, batch).get("succeeded", 0) > b + 20
                   and _counts(pg_url, batch).get("running", 0) > 0, interval=0.05, timeout=180,
                   what="the worker to be mid-batch")
        worker.kill()
        killed_at = time.monotonic()
        stuck = _held_by_dead(pg_url, batch)
        worker = start_worker(env, pool="prefork", concurrency=2)
        if not stuck:
            continue
        # recovered = no job is left with the dead worker: each is requeued (at the back of the queue,
        # behind the rest of the batch) or already taken again by the live worker
        wait_until(lambda s=stuck: not (s & _held_by_dead(pg_url, batch)), interval=0.2, timeout=180,
                   what="the jobs the dead worker held to be requeued")
        recoveries.append(time.monotonic() - killed_at)
    assert len(recoveries) == 3, recoveries
    try:
        wait_until(lambda: _counts(pg_url, batch).get("succeeded", 0) == N, timeout=300, what="every document")
    except AssertionError as e:
        stuck = {s: sorted(_ids(pg_url, batch, s))[:5] for s in ("queued", "running", "pending")}
        raise AssertionError(f"{e}: {_counts(pg_url, batch)}, e.g. {stuck}") from None
    counts = _counts(pg_url, batch)
    assert counts == {"succeeded": N}, counts
    with get_engine(pg_url).connect() as conn:
        ids = conn.execute(sa.select(Job.id).where(Job.batch_id == batch)).scalars().all()
    assert len(ids) == len(set(ids)) == N  # one job, one outcome each
    shown = ", ".join(f"{r:.1f}s" for r in recoveries)
    print(f"\nrecovery after SIGKILL (kill -> every job the dead worker held requeued): {shown}")
    assert max(recoveries) < 60, recoveries


def test_jobs_a_submit_stored_but_never_published_are_published_by_the_reaper(
        sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    """The outbox's last line of defence: jobs left ``pending`` (their submit died between storing and
    publishing) and whose messages are gone run anyway, without anyone calling ``retry``."""
    import redis

    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_OUTBOX_GRACE_S="1", DOCQUEUE_REAPER_INTERVAL_S="1")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"inv{i}.txt").write_text(f"Invoice {i}: amount due ${i}0.00.")
    batch = cli_json(env, "submit", "classify", str(inbox), "--labels", "contract,invoice", "--json")["batch"]
    redis.Redis.from_url(clean_redis).delete("classify")  # the messages never made it
    with get_engine(sqlite_url).begin() as conn:
        conn.execute(sa.update(Job).where(Job.batch_id == batch).values(status="pending"))
    assert cli_json(env, "status", batch, "--json")["pending"] == 3
    start_worker(env)
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 3, timeout=60,
               what="the reaper to publish the pending jobs")
