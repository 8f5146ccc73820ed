"""Batch control on the real Redis and databases: list batches with counts, cancel one before a
worker gets to it (the worker's pipeline, run in this process, skips its jobs and the batch ends
``cancelled``), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.conftest import service_env
from tests.helpers import cli, cli_json, migrate_if_postgres, results_jsonl
from tests.inprocess_worker import drain


def _batches(env: dict[str, str], *args: str) -> list[dict]:
    return [json.loads(line) for line in cli(env, "batches", "--json", *args).stdout.splitlines()]


def test_cancelled_jobs_are_skipped_and_batches_lists_states(database_url: str, clean_redis: str,
                                                            tmp_path: Path) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"inv{i}.txt").write_text(f"Invoice {i}: amount due ${i}0.00, payable within 30 days.")
    labels = ["--labels", "contract,invoice"]
    cancelled = cli_json(env, "submit", "classify", str(inbox), str(tmp_path / "missing.txt"), *labels,
                         "--json")["batch"]
    kept = cli_json(env, "submit", "classify", str(inbox / "inv0.txt"), *labels, "--force", "--json")["batch"]
    assert {b["batch"]: b["state"] for b in _batches(env)} == {cancelled: "queued", kept: "queued"}

    assert cli_json(env, "cancel", cancelled, "--json") == {"batch": cancelled, "cancelled": 3}
    assert drain(env) == 1  # the worker's pipeline: the cancelled batch's jobs are skipped, not run
    assert redis.Redis.from_url(clean_redis).llen("classify") == 0
    assert cli_json(env, "status", kept, "--json")["succeeded"] == 1

    status = cli_json(env, "status", cancelled, "--json")
    assert (status["cancelled"], status["succeeded"], status["queued"], status["failed"]) == (3, 0, 0, 1)
    rows = results_jsonl(env, cancelled)
    assert sorted(r["status"] for r in rows) == ["cancelled"] * 3 + ["failed"]
    assert all(r["result"] is None for r in rows)
    assert [b["batch"] for b in _batches(env, "--status", "cancelled")] == [cancelled]
    assert [b["batch"] for b in _batches(env, "--status", "finished")] == [kept]

    # retry after all: the cancelled jobs run; the file that was never read is skipped, not re-run
    again = cli_json(env, "retry", cancelled, "--cancelled", "--failed", "--json")
    assert (again["reopened"], again["skipped_unreadable"], again["jobs"]) == (3, 1, 3)
    assert drain(env) == 3
    assert cli_json(env, "status", cancelled, "--json")["succeeded"] == 3
    assert cli_json(env, "status", cancelled, "--json")["failed"] == 1
    assert _batches(env, "--since", "2099-01-01") == []
    assert cli(env, "cancel", "no-such-batch", check=False).returncode == 1

    # retention: nothing is old enough for 1d; for a date in the future every finished batch is, and a
    # batch still waiting for a worker is kept
    assert cli_json(env, "purge", "--older-than", "1d", "--json")["purged"] == 0
    waiting = cli_json(env, "submit", "classify", str(inbox / "inv1.txt"), *labels, "--force", "--json")["batch"]
    future = cli_json(env, "purge", "--older-than", "2099-01-01", "--dry-run", "--json")
    assert sorted(future["batches"]) == sorted([cancelled, kept]) and future["purged"] == 0
    assert cli_json(env, "purge", "--older-than", "2099-01-01", "--json")["purged"] == 2
    assert [b["batch"] for b in _batches(env)] == [waiting]
    assert cli(env, "results", cancelled, check=False).returncode == 1  # gone
