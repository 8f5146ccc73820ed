"""A worker whose configured model is of the wrong kind (a chat model for review, which has no llm
engine yet) refuses the queue at start, with the
``wrong_model_kind`` reason, and ``submit`` repeats it (one real worker process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_env
from tests.helpers import cli

pytestmark = pytest.mark.integration


def test_a_chat_model_configured_for_review_is_refused_at_start(clean_redis: str, sqlite_url: str,
                                                                  tmp_path: Path, start_worker: Any) -> None:
    chat = tmp_path / "llama-chat"
    chat.mkdir()
    (chat / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_REVIEW_MODEL=str(chat))
    worker = start_worker(env, queues="review", wait=False)
    assert worker.proc.wait(120) == 2  # its only queue refused: nothing left to consume

    doc = tmp_path / "a.txt"
    doc.write_text("The buyer shall pay the invoice within thirty days.")
    refused = cli(env, "submit", "review", str(doc), "--require-worker", check=False)
    assert refused.returncode == 3, refused.stderr
    assert "wrong_model_kind" in refused.stderr and "causal LM" in refused.stderr and str(chat) in refused.stderr
