"""An enterprise system publishes to the queue without our code: plain JSON pushed onto Redis.

This is the wire format the README documents for Java/Node publishers (Celery message protocol 2,
kombu's Redis envelope). The test builds the bytes by hand with only the standard library and redis.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import redis

from tests.conftest import SharedWorker, service_env
from tests.helpers import cli, cli_json, results_jsonl, wait_until


def foreign_message(task: str, queue: str, kwargs: dict, correlation_id: str | None = None,
                    raw_body: bool = False) -> bytes:
    """Exactly what a non-Python publisher would LPUSH onto the list named after the queue
    (docqueue/contract/envelope.schema.json). ``correlation_id``: the publisher's own request id,
    else the task id as Celery does. ``raw_body``: the body as JSON text, without ``body_encoding``
    (the other form the schema allows) instead of base64."""
    task_id = str(uuid.uuid4())
    body = [[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    envelope = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "java", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
                    "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None]},
        "properties": {"correlation_id": correlation_id or task_id, "delivery_mode": 2, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
                       "delivery_info": {"exchange": "", "routing_key": queue}},
    }
    if raw_body:
        envelope["body"] = json.dumps(body)
        del envelope["properties"]["body_encoding"]
    return json.dumps(envelope).encode()


@pytest.mark.parametrize("shared_model_worker", ["sqlite"], indirect=True)
def test_inline_documents_from_a_foreign_publisher(shared_model_worker: SharedWorker, tmp_path: Path) -> None:
    env = shared_model_worker.env(tmp_path)
    batch = f"crm-export-{uuid.uuid4().hex[:8]}"  # the worker and its database are shared
    kwargs = {"v": 1, "batch": batch, "params": {"labels": ["contract", "invoice"]},
              "documents": [
                  {"id": "ticket-1", "text": "Invoice 991: amount due $120.00, payable within 30 days.",
                   "metadata": {"owner": "billing"}},
                  {"id": "ticket-2", "text": "This Agreement is entered into by and between the parties, "
                                             "who agree to the terms and conditions set forth herein."},
                  {"id": "ticket-3", "text": "   "},
              ]}
    client = redis.Redis.from_url(shared_model_worker.redis_url)
    raw = foreign_message("docqueue.classify", "classify", kwargs)
    client.lpush("classify", raw)
    client.lpush("classify", raw)  # a publisher retry: the same message twice

    wait_until(lambda: client.llen("classify") == 0, what="messages consumed")
    wait_until(lambda: cli_json(env, "status", batch, "--json")["queued"] == 0
               and cli_json(env, "status", batch, "--json")["running"] == 0, what="batch done")
    status = cli_json(env, "status", batch, "--json")
    assert status["total"] == 3 and status["succeeded"] == 2 and status["failed"] == 1  # stored once
    rows = {r["document"]: r for r in results_jsonl(env, batch)}
    assert rows["ticket-1"]["result"]["label"] == "invoice"
    assert rows["ticket-1"]["metadata"] == {"owner": "billing"}
    assert rows["ticket-2"]["result"]["label"] == "contract"
    assert rows["ticket-3"]["error"]["kind"] == "empty_document"


def test_malformed_message_is_dropped_with_a_reason(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                    start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    worker = start_worker(env)
    client = redis.Redis.from_url(clean_redis)
    client.lpush("classify", foreign_message("docqueue.classify", "classify", {"v": 1, "documents": []}))
    wait_until(lambda: "refused classify message" in worker.log(), what="the worker to reject it")
    assert "exactly one, non-empty" in worker.log()
    letters = [json.loads(line) for line in cli(env, "dlq", "list", "--json").stdout.splitlines()]
    assert [e["kind"] for e in letters] == ["invalid_message"] and "exactly one, non-empty" in letters[0]["reason"]


def test_bad_documents_fail_alone_and_long_batch_ids_work_on_both_databases(
        database_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    """One bad document of a foreign message fails alone (``invalid_document``), a repeated id fails
    its repeat (``duplicate_document``), the good ones are stored and run; a 100-character batch id
    works on PostgreSQL as on SQLite (it once failed five retries there and stored nothing)."""
    from tests.helpers import migrate_if_postgres

    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    start_worker(env)
    batch = "crm-export-2026-12-02-" + "x" * 78
    kwargs = {"v": 1, "batch": batch, "params": {"labels": ["contract", "invoice"]},
              "documents": [
                  {"id": "good-1", "text": "Invoice 991: amount due $120.00, payable within 30 days."},
                  {"text": "a document without an id"},
                  {"id": "numeric-text", "text": 12345},
                  {"id": "good-1", "text": "the same id again"},
                  {"id": "good-2", "text": "This Agreement is entered into by and between the parties hereto."},
              ]}
    client = redis.Redis.from_url(clean_redis)
    raw = foreign_message("docqueue.classify", "classify", kwargs)
    client.lpush("classify", raw)
    client.lpush("classify", raw)  # delivered twice: still one outcome per document
    wait_until(lambda: client.llen("classify") == 0, what="messages consumed")
    wait_until(lambda: (s := cli_json(env, "status", batch, "--json"))["queued"] + s["running"] == 0
               and s["total"] == 5, what="batch done")
    rows = results_jsonl(env, batch)
    assert len(rows) == 5
    by_kind = sorted((r["document"], r["status"], (r["error"] or {}).get("kind")) for r in rows)
    assert by_kind == [("(document #1 without a usable id)", "failed", "invalid_document"),
                       ("good-1", "failed", "duplicate_document"),
                       ("good-1", "succeeded", None),
                       ("good-2", "succeeded", None),
                       ("numeric-text", "failed", "invalid_document")], by_kind
    numeric = next(r for r in rows if r["document"] == "numeric-text")
    assert "text: Input should be a valid string" in numeric["error"]["message"]
    assert {r["id"] for r in rows if r["status"] == "succeeded"} == {"good-1", "good-2"}  # external ids kept


def test_a_message_cannot_probe_the_workers_disk_through_params_model(sqlite_url: str, clean_redis: str,
                                                                       tmp_path: Path, start_worker) -> None:
    """/etc/passwd (a file), /root (a folder) and a missing path used to fail with three different
    messages; now all get the same model_not_allowed, and a path inside DOCQUEUE_MODEL_DIRS that
    does not exist is the ordinary model_unavailable."""
    models = tmp_path / "models"
    models.mkdir()
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_MODEL_DIRS=str(models))
    start_worker(env)
    client = redis.Redis.from_url(clean_redis)
    specs = {"probe-file": "/etc/passwd", "probe-dir": "/root", "probe-missing": str(tmp_path / "nothing-here"),
             "probe-hub": "someone/else-model", "allowed-dir": str(models / "not-downloaded")}
    for batch, spec in specs.items():
        kwargs = {"v": 1, "batch": batch, "params": {"labels": ["a", "b"], "engine": "fine-tuned", "model": spec},
                  "documents": [{"id": "d1", "text": "Invoice 991: amount due $120.00."}]}
        client.lpush("classify", foreign_message("docqueue.classify", "classify", kwargs))
    wait_until(lambda: all(cli_json(env, "status", b, "--json")["failed"] == 1 for b in specs), timeout=120,
               what="every probe answered")
    errors = {b: results_jsonl(env, b)[0]["error"] for b in specs}
    refused = {b: e for b, e in errors.items() if b != "allowed-dir"}
    assert {e["kind"] for e in refused.values()} == {"model_not_allowed"}
    assert len({e["message"].replace(repr(specs[b]), "SPEC") for b, e in refused.items()}) == 1
    assert errors["allowed-dir"]["kind"] == "model_unavailable"
