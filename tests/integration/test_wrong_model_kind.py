"""A worker whose configured model is of the wrong kind (a seq2seq model for review: no review engine
takes an encoder-decoder) refuses the queue at start, with the ``wrong_model_kind`` reason, and
``submit`` repeats it (one real worker process). A causal LM for review is no longer wrong: the llm
engine takes it (tests/integration/test_llm_worker.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_env
from tests.helpers import cli, results_jsonl

pytestmark = pytest.mark.integration


def test_a_seq2seq_model_configured_for_review_is_refused_at_start(clean_redis: str, sqlite_url: str,
                                                                     tmp_path: Path, start_worker: Any) -> None:
    model = tmp_path / "bart"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["BartForConditionalGeneration"],
                                                   "model_type": "bart", "is_encoder_decoder": True}))
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_REVIEW_MODEL=str(model))
    worker = start_worker(env, queues="review", wait=False)
    assert worker.proc.wait(120) == 2  # its only queue refused: nothing left to consume

    doc = tmp_path / "a.txt"
    doc.write_text("The buyer shall pay the invoice within thirty days.")
    refused = cli(env, "submit", "review", str(doc), "--require-worker", check=False)
    assert refused.returncode == 3, refused.stderr
    assert "wrong_model_kind" in refused.stderr and "seq2seq" in refused.stderr and str(model) in refused.stderr


def test_a_configured_model_that_cannot_load_ends_the_worker_with_one_line(clean_redis: str, sqlite_url: str,
                                                                          tmp_path: Path, start_worker: Any) -> None:
    """A causal LM folder holding a config but no tokenizer or weights passes the start checks (its kind
    is right) and fails to load: the solo worker ends with status 1 and one line naming the model, not a
    traceback (it used to print the whole stack)."""
    chat = tmp_path / "llama-chat"
    chat.mkdir()
    (chat / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_REVIEW_MODEL=str(chat))
    worker = start_worker(env, queues="review", wait=False)
    assert worker.proc.wait(120) == 1
    log = worker.log()
    assert "cannot load a model of review (model_unavailable)" in log and str(chat) in log, log
    assert "Traceback" not in log, log


def test_a_prefork_child_that_cannot_load_logs_one_line_and_fails_its_documents(
        clean_redis: str, sqlite_url: str, tmp_path: Path, start_worker: Any) -> None:
    """On the prefork pool the models load in each child after the fork, when the worker is already
    serving: a model that cannot load is one error line there too (it was Celery's "signal handler
    raised" and a traceback), the child stays up, and each document fails with ``model_unavailable``
    naming the model, instead of being lost or killing the process."""
    encoder = tmp_path / "bert-without-weights"
    encoder.mkdir()
    (encoder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_CLASSIFY_MODEL=str(encoder))
    worker = start_worker(env, pool="prefork", concurrency=1)
    doc = tmp_path / "a.txt"
    doc.write_text("The buyer shall pay the invoice within thirty days.")
    done = cli(env, "submit", "classify", str(doc), "--labels", "invoice,contract", "--wait", "--timeout", "120",
               check=False)
    assert done.returncode == 1, done.stdout + done.stderr  # its only document failed
    batch = done.stdout.strip().splitlines()[-1]
    [row] = results_jsonl(env, batch)
    assert row["error"]["kind"] == "model_unavailable" and str(encoder) in row["error"]["message"], row
    log = worker.log()
    assert "cannot load a model of classify (model_unavailable)" in log and str(encoder) in log, log
    assert "Traceback" not in log and "raised" not in log, log
    assert worker.proc.poll() is None  # the worker is still serving
