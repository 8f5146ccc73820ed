"""``docqueue train`` through a real worker on the ``train`` queue: killed mid-training (SIGKILL), the
job goes back to the queue and the next worker trains it to the end; the model is published once,
listed, and used by ``submit classify --model NAME@VERSION`` (a tiny random encoder: seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, create_engine, select

from docqueue.models import Job
from tests.conftest import service_env
from tests.helpers import cli, cli_json, results_jsonl, wait_until
from tests.tiny_classifiers import build_distilbert_cls

PAY = ["invoice", "pay", "fee", "tax", "within", "days", "month", "year"]
LAW = ["contract", "party", "agreement", "clause", "law", "court", "breach", "warranty"]


def _job(database_url: str, batch: str) -> Job:
    with Session(create_engine(database_url)) as session:
        return session.exec(select(Job).where(Job.batch_id == batch)).one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_train_survives_a_killed_worker_and_classify_uses_the_model(database_url: str, clean_redis: str,
                                                                     tmp_path: Path, start_worker: Any) -> None:
    encoder = build_distilbert_cls(tmp_path / "encoder")
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_CLASSIFY_MODEL=str(encoder),
                      DOCQUEUE_HEARTBEAT_INTERVAL_S="0.5", DOCQUEUE_HEARTBEAT_TIMEOUT_S="3",
                      DOCQUEUE_REAPER_INTERVAL_S="1", DOCQUEUE_DEVICE="cpu")
    rng = random.Random(0)
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"text": " ".join(rng.choice(w) for _ in range(8)), "label": label}) + "\n"
                                for w, label in [(PAY, "billing"), (LAW, "legal")] * 6))
    queued = cli_json(env, "train", "classify", "clauses", "--examples", str(examples), "--iterations", "10",
                      "--batch-size", "2", "--learning-rate", "0.001", "--labels", "warranty claims", "--json")
    batch = queued["batch"]
    assert queued["examples"] == 12

    first = start_worker(env, queues="train")
    # killed once it has reported progress: mid-training, with the job running on it
    wait_until(lambda: (_job(database_url, batch).result or {}).get("progress"), timeout=300, interval=0.1,
               what="training progress")
    first.kill()
    assert _job(database_url, batch).status == "running"

    start_worker(env, queues="train,classify")
    wait_until(lambda: _job(database_url, batch).status in ("succeeded", "failed"), timeout=600,
               what="the training job to finish on the second worker")
    job = _job(database_url, batch)
    assert job.status == "succeeded", (job.error_kind, job.error_message)
    assert job.attempts == 2 and job.model_id == "clauses@1"
    assert job.result is not None and "progress" not in job.result
    assert job.result["labels"] == ["billing", "legal", "warranty claims"]  # --labels: one learned from its name

    listed = [json.loads(line) for line in cli(env, "models", "list", "--json").stdout.splitlines()]
    assert [m["model"] for m in listed if m.get("store")] == ["clauses@1"]  # the killed run published nothing
    events = [json.loads(line) for line in cli(env, "events", "--batch", batch, "--json").stdout.splitlines()]
    progress = [e for e in events if e["type"] == "train.progress"]
    assert progress and all(e["job_id"] == job.id for e in progress)
    assert [e["status"] for e in events if e["type"] == "document.finished"] == ["succeeded"]

    doc = tmp_path / "invoice.txt"
    doc.write_text(" ".join(PAY))
    submitted = cli_json(env, "submit", "classify", str(doc), "--model", "clauses@1", "--wait", "--json")
    [row] = results_jsonl(env, submitted["batch"])
    assert row["status"] == "succeeded", row
    assert row["model"]["id"] == "clauses@1" and set(row["result"]["scores"]) == {"billing", "legal", "warranty claims"}
