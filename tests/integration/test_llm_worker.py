"""The llm engine in a real worker process: ``submit summarize --engine llm`` end to end, kill -9 in
the middle of generation losing nothing (the next worker finishes every document, once), and a
causal LM as the worker's review model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from sqlmodel import col

from docqueue import contract
from docqueue.db import get_engine
from docqueue.models import Job
from tests.conftest import service_env
from tests.helpers import cli_json, prose, results_jsonl, wait_until
from tests.tiny_llms import WORDS, build_llama_chat

pytestmark = pytest.mark.integration


def _jobs(database_url: str, batch: str) -> list[Any]:
    with get_engine(database_url).connect() as conn:
        return list(conn.execute(sa.select(Job).where(col(Job.batch_id) == batch)).all())


def _done(env: dict[str, str], batch: str) -> bool:
    s = cli_json(env, "status", batch, "--json")
    return bool(s["succeeded"] + s["failed"] == s["total"])


def test_kill_9_mid_generation_loses_nothing(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                             start_worker: Any) -> None:
    model = build_llama_chat(tmp_path / "models" / "llama-chat")
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_LLM_MODEL=str(model),
                      DOCQUEUE_SUMMARIZE_ENGINE="llm", DOCQUEUE_VISIBILITY_TIMEOUT="4",
                      DOCQUEUE_HEARTBEAT_INTERVAL_S="1", DOCQUEUE_HEARTBEAT_TIMEOUT_S="3", DOCQUEUE_BATCH_MAX_DOCS="4")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(12):  # several windows each: map-reduce rounds keep a message busy a while
        (inbox / f"doc{i:02d}.txt").write_text(prose(3000, WORDS, seed=i))
    batch = cli_json(env, "submit", "summarize", str(inbox), "--engine", "llm", "--style", "tldr",
                     "--max-new-tokens", "24", "--json")["batch"]
    first = start_worker(env, queues="summarize")
    wait_until(lambda: any(j.status == "running" for j in _jobs(sqlite_url, batch)), timeout=120, interval=0.05,
               what="the first worker to start generating")
    first.kill()
    stuck = [j for j in _jobs(sqlite_url, batch) if j.status == "running"]
    assert stuck, "the kill should have landed mid-generation"

    start_worker(env, queues="summarize")
    wait_until(lambda: _done(env, batch), timeout=600, what="the batch to finish after the kill")
    rows = results_jsonl(env, batch)
    assert len(rows) == 12 and all(r["status"] == "succeeded" for r in rows), rows
    for r in rows:
        assert r["result"]["engine"] == "llm" and r["result"]["chunks"] >= 1
        assert r["result"]["llm"]["model"] == str(model) and r["result"]["llm"]["template"]["id"] == "summarize.tldr"
        assert r["model"]["id"] == str(model)


def test_a_worker_whose_review_model_is_a_causal_lm_reviews_with_it(sqlite_url: str, clean_redis: str,
                                                                    tmp_path: Path, start_worker: Any) -> None:
    """Once refused at start (wrong_model_kind), a causal LM as DOCQUEUE_REVIEW_MODEL now takes the review
    queue: JSON held to its schema, results that validate against the published review result schema."""
    model = build_llama_chat(tmp_path / "models" / "llama-chat")
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_REVIEW_MODEL=str(model), OMP_NUM_THREADS="1",
                      DOCQUEUE_LLM_MAX_NEW_TOKENS='{"review": 64}')
    inbox = tmp_path / "contracts"
    inbox.mkdir()
    for i in range(2):  # one window, and several
        (inbox / f"c{i}.txt").write_text(prose(300 + 900 * i, WORDS, seed=i))
    start_worker(env, queues="review")
    batch = cli_json(env, "submit", "review", str(inbox), "--categories", "Governing Law", "--max-new-tokens", "64",
                     "--json")["batch"]
    wait_until(lambda: _done(env, batch), timeout=300, what="the review batch")
    validator = jsonschema.Draft202012Validator(contract.load("review.result"))
    rows = results_jsonl(env, batch)
    assert len(rows) == 2 and all(r["status"] == "succeeded" for r in rows), rows
    for r in rows:
        validator.validate(r["result"])
        assert r["result"]["engine"] == "llm" and r["result"]["llm"]["template"]["id"] == "review"
        assert r["model"]["id"] == str(model)
