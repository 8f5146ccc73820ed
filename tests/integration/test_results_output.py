"""What ``docqueue results`` prints: the JSON exactly as the worker wrote it, in the same key order on
SQLite and PostgreSQL, and a quiet exit when the reader closes the pipe early (``| head``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from docqueue.db import ensure_schema, upgrade
from docqueue.schema import TaskMessage
from tests.conftest import FIXTURES, SharedWorker, service_env
from tests.helpers import ROOT, cli, cli_json
from workers import results

#: Neither alphabetical nor by length, the two orders jsonb could produce.
LABELS = ["news", "contract", "invoice", "casual conversation"]


def test_classify_results_keep_the_written_order(shared_model_worker: SharedWorker, tmp_path: Path) -> None:
    env = shared_model_worker.env(tmp_path)
    batch = cli_json(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"),
                     "--labels", ",".join(LABELS), "--wait", "--timeout", "300", "--json")["batch"]
    line = cli(env, "results", batch).stdout.strip()
    result = json.loads(line)["result"]
    assert list(result) == ["label", "labels", "scores", "engine", "runtime"], line
    assert list(result["scores"]) == LABELS, line  # the labels as given, on both databases


def _stored_batch(engine: sa.Engine, n: int) -> None:
    message = TaskMessage(batch="b1", params={"labels": LABELS},
                          documents=tuple({"id": f"doc-{i}", "text": f"text {i}", "metadata": {"z": 1, "a": 2}}
                                          for i in range(n)))  # type: ignore[misc]
    job_ids = results.materialize_inline(engine, "classify", message)
    results.claim(engine, job_ids, "w")
    outcome = {"label": "invoice", "labels": ["invoice"], "engine": "embedding",
               "scores": {"news": 0.1, "contract": 0.2, "invoice": 0.6, "casual conversation": 0.1}}
    results.record(engine, [(j, outcome) for j in job_ids], "m", "r")


def _results_text(url: str, redis_url: str, tmp_path: Path) -> str:
    upgrade(url)
    _stored_batch(ensure_schema(url), 3)
    return cli(service_env(redis_url, url, tmp_path), "results", "b1").stdout


def test_results_are_the_same_text_on_sqlite_and_postgresql(sqlite_url: str, pg_url: str, redis_url: str,
                                                            tmp_path: Path) -> None:
    on_sqlite = _results_text(sqlite_url, redis_url, tmp_path)
    on_postgresql = _results_text(pg_url, redis_url, tmp_path)
    assert on_sqlite == on_postgresql
    first = json.loads(on_sqlite.splitlines()[0])
    assert list(first["result"]) == ["label", "labels", "engine", "scores"]  # as recorded above
    assert list(first["result"]["scores"]) == LABELS and list(first["metadata"]) == ["z", "a"]


@pytest.mark.e2e  # its own CLI process
def test_results_into_a_closed_pipe_exit_quietly(sqlite_url: str, redis_url: str, tmp_path: Path) -> None:
    upgrade(sqlite_url)
    _stored_batch(ensure_schema(sqlite_url), 3000)  # far more than one pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "producer.cli", "results", "b1"], cwd=ROOT,
                            env=service_env(redis_url, sqlite_url, tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["status"] == "succeeded"
    proc.stdout.close()  # what `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and stderr == ""
