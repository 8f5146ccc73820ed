"""Messages that pass the published schemas yet used to crash a worker or vanish (issue 23, 1-3, 14).

One prefork worker (the pool that pickles each task for its child, as production runs it) with the
noop engine takes, in order: a ``metadata`` nested 700 levels deep (``RecursionError ... while
pickling`` killed the worker, and the restored message killed the next one), a param nested
100,000 levels deep, lone surrogates in a text, an id, a metadata value and a label, NUL in an id
and a text (PostgreSQL refuses NUL: retried five times, then dropped with the good documents),
then a good message. On both databases:

- the worker keeps its PID and runs the good message after them;
- each document has its own outcome: the bad one fails with a kind, its good neighbours succeed
  (the 700-level metadata too: its document fails with ``too_deeply_nested``, the message runs);
- a message that cannot be handled whole (a param too deep to read, an unstorable label) is a dead
  letter naming its batch, and a ``message.rejected`` event with the publisher's correlation id says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from docqueue.events import STREAM, decode_entry
from tests.conftest import service_env
from tests.event_checks import SECRET, Receiver, validate_entry, validate_event
from tests.helpers import cli, cli_json, migrate_if_postgres, nested, results_jsonl, wait_until
from tests.integration.test_foreign_publisher import foreign_message

pytestmark = pytest.mark.integration

LABELS = {"labels": ["contract", "invoice"]}
GOOD_TEXT = "Invoice 991: amount due $120.00, payable within 30 days."


def _deep_param_item() -> bytes:
    """A param nested 100,000 levels: valid JSON no Python ``json.loads`` can read (it recurses)."""
    envelope = json.loads(foreign_message("docqueue.classify", "classify", {
        "v": 1, "batch": "deep-param", "params": LABELS, "documents": [{"id": "d", "text": GOOD_TEXT}]},
        correlation_id="corr-deep-param"))
    body = ('[[], {"v": 1, "batch": "deep-param", "params": {"labels": ["contract", "invoice"], "x": '
            + "[" * 100_000 + "]" * 100_000 + '}, "documents": [{"id": "d", "text": "x"}]}, null]')
    envelope["body"] = base64.b64encode(body.encode()).decode()
    return json.dumps(envelope).encode()


def _inline(batch: str, documents: list[dict], params: dict | None = None, webhook: str | None = None) -> bytes:
    kwargs = {"v": 1, "batch": batch, "params": params or LABELS, "documents": documents}
    return foreign_message("docqueue.classify", "classify", {**kwargs, **({"webhook": webhook} if webhook else {})},
                           correlation_id=f"corr-{batch}")


def _rejections(client: redis.Redis) -> dict[str, dict]:
    rejected = {}
    entries: Any = client.xrange(STREAM, "-", "+")
    for entry_id, fields in entries:
        event = decode_entry(entry_id, fields)
        if event["type"] == "message.rejected":
            validate_entry({k.decode(): v.decode() for k, v in fields.items()})
            validate_event({k: v for k, v in event.items() if k != "stream_id"})
            rejected[event["batch"]] = event
    return rejected


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_schema_valid_messages_that_crashed_workers(database_url: str, clean_redis: str, tmp_path: Path,
                                                     start_worker: Any, receiver: Receiver) -> None:
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_WEBHOOK_SECRET=SECRET)
    migrate_if_postgres(env)
    worker = start_worker(env, queues="classify,webhooks", pool="prefork", module="tests.faults.noop_worker")
    pid = worker.proc.pid
    client = redis.Redis.from_url(clean_redis)
    good = {"id": "good", "text": GOOD_TEXT}
    items = [
        _inline("deep-metadata", [{"id": "deep", "text": GOOD_TEXT, "metadata": nested(700)}, good],
                webhook=receiver.url),
        _deep_param_item(),
        _inline("surrogates", [{"id": "in-text", "text": "bad \ud800 text"}, {"id": "bad-\udfff-id", "text": "x"},
                               {"id": "in-meta", "text": "x", "metadata": {"author": "\ud83d"}}, good]),
        _inline("nul", [{"id": "nul-\x00-id", "text": "x"}, {"id": "nul-text", "text": "a\x00b"}, good]),
        _inline("surrogate-label", [good], {"labels": ["contract", "in\ud800voice"]}, webhook=receiver.url),
        _inline("after-the-bad-ones", [good]),
    ]
    for item in items:
        client.lpush("classify", item)

    wait_until(lambda: client.llen("classify") == 0, timeout=120, what="every message consumed")
    wait_until(lambda: "after-the-bad-ones" in cli(env, "status", "after-the-bad-ones", check=False).stdout
               and cli_json(env, "status", "after-the-bad-ones", "--json")["succeeded"] == 1,
               timeout=180, what="the good message after the bad ones")
    assert worker.proc.poll() is None and worker.proc.pid == pid, worker.log()[-4000:]
    assert "Unrecoverable error" not in worker.log()

    # each document its own outcome; the text is kept or the document fails, never changed
    for batch, expected in {
        "deep-metadata": [("deep", "failed", "too_deeply_nested"), ("good", "succeeded", None)],
        "surrogates": [("(document #1 without a usable id)", "failed", "invalid_document"),
                       ("good", "succeeded", None), ("in-meta", "failed", "invalid_document"),
                       ("in-text", "failed", "invalid_text")],
        "nul": [("(document #0 without a usable id)", "failed", "invalid_document"),
                ("good", "succeeded", None), ("nul-text", "failed", "invalid_text")],
    }.items():
        rows = results_jsonl(env, batch)
        assert sorted((r["document"], r["status"], (r["error"] or {}).get("kind")) for r in rows) == expected, rows
        reasons = " ".join((r["error"] or {}).get("message", "") for r in rows)
        assert "lone surrogate" in reasons or "NUL" in reasons or "nests JSON 702 levels deep" in reasons

    # messages that cannot be handled whole: dead letters with their batch, and an event for the publisher
    letters = {e["batch"]: e for e in map(json.loads, cli(env, "dlq", "list", "--json").stdout.splitlines())}
    assert letters["deep-param"]["kind"] == "too_deeply_nested"
    assert letters["surrogate-label"]["kind"] == "invalid_message"
    assert "lone surrogate" in letters["surrogate-label"]["reason"]
    assert set(letters) == {"deep-param", "surrogate-label"}
    events = _rejections(client)
    for batch in letters:
        assert events[batch]["kind"] == letters[batch]["kind"]
        assert events[batch]["correlation_id"] == f"corr-{batch}" == letters[batch]["correlation_id"]
        assert events[batch]["dead_letter"] == letters[batch]["id"] and events[batch]["reason"]
    deep = cli_json(env, "status", "deep-metadata", "--json")
    assert (deep["rejected"], deep["failed"], deep["succeeded"]) == (0, 1, 1), deep
    # the refused message that named a webhook: the same event, POSTed and signed; the message with
    # the deep document ran, so its webhook hears that its batch finished
    wait_until(lambda: len(receiver.accepted()) >= 2, timeout=60, what="two webhooks")
    posted = {(d.event["batch"], d.event["type"]): d.event for d in receiver.accepted()}
    assert set(posted) == {("surrogate-label", "message.rejected"), ("deep-metadata", "batch.finished")}, posted
    assert posted["surrogate-label", "message.rejected"]["id"] == events["surrogate-label"]["id"]
