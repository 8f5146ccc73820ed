"""A short visibility timeout is safe: a job running longer than it is neither run twice nor lost.

Three real workers, a visibility timeout of 3 s and two jobs that take 12 s each: Redis hands the
running messages again to the idle third worker, which finds their jobs claimed with a fresh
heartbeat and acks the copies without running them. This is what lets the default be minutes
(``Settings.visibility_timeout``) instead of Celery's hour without running long jobs twice.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import service_env
from tests.faults.test_redis_restart import counts, engine_runs, write_rows
from tests.helpers import cli, cli_json, start_workers, wait_until

SLOW_S = 12


def test_job_longer_than_the_visibility_timeout_runs_once(pg_url: str, clean_redis: str, tmp_path: Path,
                                                          start_worker) -> None:
    runs = tmp_path / "engine-runs.log"
    env = service_env(clean_redis, pg_url, tmp_path, DOCQUEUE_VISIBILITY_TIMEOUT="3",
                      DOCQUEUE_HEARTBEAT_INTERVAL_S="0.5", DOCQUEUE_HEARTBEAT_TIMEOUT_S="5",
                      DOCQUEUE_REAPER_INTERVAL_S="1", DOCQUEUE_BATCH_MAX_DOCS="1",
                      DOCQUEUE_TEST_ENGINE_DELAY_S=str(SLOW_S), DOCQUEUE_TEST_ENGINE_LOG=str(runs))
    cli(env, "db", "upgrade")
    workers = start_workers(start_worker, env, 3, module="tests.faults.noop_worker")
    batch = cli_json(env, "submit", "classify", str(write_rows(tmp_path / "slow.jsonl", "s", 2)), "--id-field", "id",
                     "--labels", "contract,invoice", "--json")["batch"]
    wait_until(lambda: counts(pg_url, batch).get("running") == 2, timeout=60, what="both slow jobs to start")

    def skipped() -> int:
        return "".join(w.log() for w in workers).count("none to run (finished, cancelled or running elsewhere)")

    # both copies come back and are acked unrun while the originals still run
    wait_until(lambda: skipped() >= 2, timeout=SLOW_S - 2, interval=0.1,
               what="Redis to re-deliver the running messages (visibility timeout 3 s)")
    assert counts(pg_url, batch).get("running") == 2, "a job finished before its copy came back"
    wait_until(lambda: counts(pg_url, batch) == {"succeeded": 2}, timeout=SLOW_S * 6,
               what="both slow jobs (or a lost one)")
    assert engine_runs(runs) == {"s0": 1, "s1": 1}, engine_runs(runs)
    logs = "".join(w.log() for w in workers)
    assert "reaper: requeued" not in logs  # the heartbeats kept the long jobs theirs
    assert [w.proc.poll() for w in workers] == [None, None, None]
    print(f"\nvisibility timeout 3 s, jobs of {SLOW_S} s: {skipped()} re-deliveries acked unrun; each job ran once")
