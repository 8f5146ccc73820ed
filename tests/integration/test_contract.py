"""Real messages and real results against the published JSON Schemas (docqueue/contract).

Messages are read back from Redis exactly as ``docqueue submit`` published them (no worker is
running), and as a foreign publisher writes them; results come from a real worker process and are
read through the SQL view ``docqueue_results`` with the standard library's sqlite3 (no docqueue code).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis

from docqueue import contract
from docqueue.names import TASK_TYPES
from tests.conftest import FIXTURES, service_env
from tests.helpers import cli, cli_json, wait_until
from tests.integration.test_foreign_publisher import foreign_message


def _validate(name: str, instance: Any) -> None:
    schema = contract.load(name)
    jsonschema.Draft202012Validator(schema).validate(instance)


def _decode(raw: bytes, task: str) -> dict[str, Any]:
    """Validate one Redis item as envelope, body and message; return the message (kwargs)."""
    envelope = json.loads(raw)
    _validate("envelope", envelope)
    body_text = (base64.b64decode(envelope["body"]).decode() if envelope["properties"].get("body_encoding") == "base64"
                 else envelope["body"])
    body = json.loads(body_text)
    jsonschema.Draft202012Validator(contract.load("envelope")["$defs"]["body"]).validate(body)
    _validate(f"{task}.message", body[1])
    return body[1]


def test_messages_the_producer_publishes_follow_the_schemas(sqlite_url: str, clean_redis: str,
                                                              tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Invoice 991: amount due $120.00.")
    (docs / "b.txt").write_text("This Agreement is entered into by the parties.")
    labels = tmp_path / "labels.txt"
    labels.write_text("contract: a legal agreement\ninvoice: a bill\n")
    submissions = {
        "classify": ["--labels-file", str(labels), "--multi-label", "--threshold", "0.3", "--template",
                     "This text is about {}."],
        "summarize": ["--engine", "abstractive", "--beams", "2", "--min-length", "5", "--max-length", "40",
                      "--length-penalty", "1.5", "--language", "de", "--model", "some/model",
                      "--model-revision", "main"],
        "translate": ["--to", "de", "--from", "fr", "--beams", "2"],
        "review": ["--categories", "governing law,cap on liability", "--min-score", "0.4"],
    }
    for task, options in submissions.items():
        cli(env, "submit", task, str(docs), *options)
    requests = tmp_path / "requests.jsonl"  # generate reads OpenAI Batch API files, a request per line
    requests.write_text(json.dumps({"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "some/model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}}) + "\n")
    cli(env, "submit", "generate", str(requests))
    cli(env, "submit", "summarize", str(docs), "--engine", "extractive", "--sentences", "2")
    client = redis.Redis.from_url(clean_redis)
    seen: dict[str, list[dict[str, Any]]] = {}
    for task in TASK_TYPES:
        items = client.lrange(task, 0, -1)
        assert items, f"nothing published on {task}"
        seen[task] = [_decode(raw, task) for raw in items]
    assert seen["classify"][0]["params"]["multi_label"] is True
    assert seen["review"][0]["params"]["categories"] == ["Governing Law", "Cap on Liability"]
    assert {m["params"]["engine"] for m in seen["summarize"]} == {"abstractive", "extractive"}
    assert seen["generate"][0]["params"] == {} and len(seen["generate"][0]["jobs"]) == 1
    # the envelope of the README / the foreign-publisher test follows the same schema, in both body forms
    kwargs = {"v": 1, "batch": "b-1", "params": {"to": "de", "from": "auto"},
              "documents": [{"id": "1", "text": "Bonjour", "metadata": {"k": "v"}}]}
    for raw_body in (False, True):
        assert _decode(foreign_message("docqueue.translate", "translate", kwargs, "req-9", raw_body),
                       "translate") == kwargs
    # and the schema refuses what the worker dead-letters: a pickle body, a task of another queue
    envelope = json.loads(foreign_message("docqueue.translate", "translate", kwargs))
    for broken in ({**envelope, "content-type": "application/x-python-serialize"},
                   {**envelope, "headers": {**envelope["headers"], "task": "celery.chord_unlock"}},
                   {k: v for k, v in envelope.items() if k != "properties"}):
        with pytest.raises(jsonschema.ValidationError):
            _validate("envelope", broken)


def _view_rows(sqlite_url: str, batch: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM docqueue_results WHERE batch_id = ? ORDER BY position", (batch,)).fetchall()
    finally:
        conn.close()


def test_worker_results_follow_the_schemas(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                           start_worker) -> None:
    """classify (single- and multi-label), extractive summarize and review run on the offline MiniLM;
    translate and abstractive summarize are checked with tiny seq2seq models in tests/seq2seq."""
    env = service_env(clean_redis, sqlite_url, tmp_path)
    start_worker(env, queues="classify,summarize,review")
    contract_text = (FIXTURES / "cuad" / "tickets_sponsorship.txt").read_text()
    article = (FIXTURES / "summarize" / "scitldr-rnn-training.txt").read_text()
    invoice = "Invoice 991: amount due $120.00, payable within 30 days."
    messages = {
        "classify": {"labels": ["contract", "invoice"], "multi_label": True, "threshold": 0.2},
        "summarize": {"engine": "extractive", "sentences": 2},
        "review": {"categories": ["Governing Law", "Parties"]},
    }
    texts = {"classify": invoice, "summarize": article, "review": contract_text}
    client = redis.Redis.from_url(clean_redis)
    for task, params in messages.items():
        kwargs = {"v": 1, "batch": f"schema-{task}", "params": params,
                  "documents": [{"id": f"{task}-1", "text": texts[task]}]}
        _validate(f"{task}.message", kwargs)
        client.lpush(task, foreign_message(f"docqueue.{task}", task, kwargs))
    client.lpush("classify", foreign_message("docqueue.classify", "classify", {
        "v": 1, "batch": "schema-classify-single", "params": {"labels": ["contract", "invoice"]},
        "documents": [{"id": "c-2", "text": contract_text[:2000]}]}))
    batches = [*(f"schema-{t}" for t in messages), "schema-classify-single"]
    wait_until(lambda: all(cli_json(env, "status", b, "--json")["succeeded"] == 1 for b in batches),
               timeout=300, what="every result")
    for batch in batches:
        (row,) = _view_rows(sqlite_url, batch)
        assert row["status"] == "succeeded", dict(row)
        _validate(f"{row['task']}.result", json.loads(row["result"]))
    (review,) = _view_rows(sqlite_url, "schema-review")
    assert json.loads(review["result"])["fields"]["governing_law"] == "California"
