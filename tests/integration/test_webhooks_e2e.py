"""Completion events and signed webhooks end to end: a real model worker, a real webhooks worker
(``--queues webhooks --concurrency 2``, no model), and HTTP receivers on 127.0.0.1 that verify every
signature as the Standard Webhooks spec tells a receiver to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.conftest import service_env
from tests.event_checks import SECRET, Receiver, of_batch, stream
from tests.helpers import cli, cli_json, migrate_if_postgres, results_jsonl, wait_until
from tests.integration.test_foreign_publisher import foreign_message

LABELS = ("--labels", "contract,invoice")


@pytest.fixture
def receivers() -> list[Receiver]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def test_batch_events_match_the_database_and_reach_the_webhook_signed(
        database_url: str, clean_redis: str, tmp_path: Path, start_worker, receivers: list[Receiver]) -> None:
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_WEBHOOK_SECRET=SECRET, OMP_NUM_THREADS="1")
    migrate_if_postgres(env)
    receiver = Receiver()
    receivers.append(receiver)
    model_worker = start_worker(env)
    hooks = start_worker(env, queues="webhooks", pool="prefork", concurrency=2)
    (tmp_path / "invoice.txt").write_text("Invoice 7781: amount due $310.00, payable within 30 days of receipt.")
    (tmp_path / "contract.txt").write_text("This Agreement is entered into by and between the parties, who agree "
                                           "to the terms and conditions set forth herein.")
    (tmp_path / "blank.txt").write_text("   \n")
    batch = cli_json(env, "submit", "classify", *(str(tmp_path / f) for f in ("invoice.txt", "contract.txt",
                     "blank.txt", "gone.txt")), *LABELS, "--webhook", receiver.url, "--webhook-documents",
                     "--json")["batch"]

    wait_until(lambda: of_batch(clean_redis, batch, "batch.finished"), timeout=180, what="batch.finished")
    wait_until(lambda: len(receiver.accepted()) >= 5, timeout=60, what="5 webhooks (4 documents, 1 batch)")

    # the stream says what the database says, document by document
    docs = {d["document_id"]: d for d in of_batch(clean_redis, batch, "document.finished")}
    rows = results_jsonl(env, batch)
    assert len(docs) == len(rows) == 4
    for row in rows:
        event = docs[row["document_id"]]
        assert (event["status"], event["document"], event["result"], event["error"], event["model"]) == \
            (row["status"], row["document"], row["result"], row["error"], row["model"])
    kinds = sorted((d["error"] or {}).get("kind") or "" for d in docs.values())
    assert kinds == ["", "", "empty_document", "not_found"]
    assert {d["result"]["label"] for d in docs.values() if d["result"]} == {"invoice", "contract"}
    (finished,) = of_batch(clean_redis, batch, "batch.finished")
    status = cli_json(env, "status", batch, "--json")
    assert finished["counts"] == {s: status[s] for s in ("succeeded", "failed", "cancelled")} == \
        {"succeeded": 2, "failed": 2, "cancelled": 0}
    assert finished["state"] == "finished" and finished["total"] == 4

    # every event of the batch was POSTed once, signed, its body exactly the stream's event
    events = {d["id"]: d for _, _, d in stream(clean_redis) if d["batch"] == batch}
    got = receiver.accepted()
    assert all(d.verified and d.path == "/hooks/docqueue" for d in got)
    assert sorted(d.headers["webhook-id"] for d in got) == sorted(events)
    for d in got:
        assert d.event == events[d.headers["webhook-id"]] and d.headers["content-type"] == "application/json"

    # deliveries happen in the webhooks worker, which loaded no model (its prefork children would log
    # the registry's "loading ... model" line); the model worker POSTs nothing
    assert "delivered to" in hooks.log()
    assert "loading classify model" not in hooks.log()
    assert "delivered to" not in model_worker.log()

    listed = [json.loads(line) for line in cli(env, "events", "--batch", batch, "--json").stdout.splitlines()]
    assert listed == [{"stream_id": i, **d} for i, _, d in stream(clean_redis) if d["batch"] == batch]


def test_webhooks_are_retried_then_given_up_visibly_and_inline_messages_carry_one(
        sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker, receivers: list[Receiver]) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_WEBHOOK_SECRET=SECRET, OMP_NUM_THREADS="1",
                      DOCQUEUE_WEBHOOK_BACKOFF_S="0.3", DOCQUEUE_WEBHOOK_MAX_TRIES="3")
    flaky, dead = Receiver(fail_first=2), Receiver(always_fail=True)
    receivers += [flaky, dead]
    start_worker(env)
    hooks = start_worker(env, queues="webhooks", pool="prefork", concurrency=2)

    # a foreign publisher's inline message names its webhook; the receiver fails twice, then takes it
    kwargs = {"v": 1, "batch": "crm-hooks-1", "params": {"labels": ["contract", "invoice"]}, "webhook": flaky.url,
              "documents": [{"id": "t-1", "text": "Invoice 12: amount due $40.00, payable within 30 days."}]}
    redis.Redis.from_url(clean_redis).lpush("classify", foreign_message("docqueue.classify", "classify", kwargs))
    wait_until(lambda: flaky.accepted(), timeout=180, what="the webhook after two failed tries")
    assert [d.answered for d in flaky.deliveries] == [500, 500, 204]
    (event,) = of_batch(clean_redis, "crm-hooks-1", "batch.finished")
    # the same webhook-id on every try (receivers drop repeats by it), a fresh valid signature each time
    assert {d.headers["webhook-id"] for d in flaky.deliveries} == {event["id"]}
    assert all(d.verified for d in flaky.deliveries) and flaky.deliveries[-1].event == event
    (doc,) = of_batch(clean_redis, "crm-hooks-1", "document.finished")
    assert (doc["external_id"], doc["status"], doc["result"]["label"]) == ("t-1", "succeeded", "invoice")
    wait_until(lambda: "on try 3" in hooks.log(), timeout=30, what="the delivery line")
    assert "failed on try 1 of 3 (HTTP 500" in hooks.log()

    # a receiver that keeps failing: given up after 3 tries, as an event, a log line and a dead letter
    (tmp_path / "c.txt").write_text("The parties agree to the terms and conditions set forth herein.")
    batch = cli_json(env, "submit", "classify", str(tmp_path / "c.txt"), *LABELS, "--webhook",
                     dead.url + "?token=s3cret", "--json")["batch"]
    failed = wait_until(lambda: of_batch(clean_redis, batch, "webhook.failed"), timeout=180, what="webhook.failed")
    (finished,) = of_batch(clean_redis, batch, "batch.finished")
    assert len(dead.deliveries) == 3 and all(d.verified for d in dead.deliveries)
    assert failed[0]["event_id"] == finished["id"] and failed[0]["attempts"] == 3
    assert failed[0]["error"].startswith("HTTP 500") and failed[0]["url"] == dead.url  # no token shown
    assert "given up after 3 tries" in hooks.log()
    listed = cli(env, "events", "--batch", batch, "--type", "webhook.failed", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in listed] == [failed[0]["id"]]
    letters = [json.loads(line) for line in cli(env, "dlq", "list", "--json").stdout.splitlines()]
    (letter,) = [e for e in letters if e["kind"] == "webhook_failed"]
    assert letter["queue"] == "webhooks" and batch in letter["reason"]
    assert cli_json(env, "status", batch, "--json")["rejected"] == 0  # not a refused message of the batch

    # once the receiver is fixed, the dead letter is sent again: same event, same id
    dead.always_fail = False
    cli(env, "dlq", "replay", letter["id"])
    wait_until(lambda: dead.accepted(), timeout=60, what="the replayed webhook")
    assert dead.accepted()[0].event == finished and dead.accepted()[0].path == "/hooks/docqueue?token=s3cret"
