"""``from docqueue import Client`` against a real worker process (the noop classify engine: the model
is not the point) on the real Redis and database: submit paths and inline documents, status, wait,
results, events, cancel and retry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from docqueue import Client
from docqueue.client import BatchFailedToFinish, Document
from tests.conftest import ROOT, service_env
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def test_import_stays_light() -> None:
    """The core must not import the producer (its loaders), workers or torch when a program imports the client."""
    code = ("import sys; from docqueue import Client; import docqueue.client; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('producer', 'workers', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_client_round_trip(sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker: Any) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    start_worker(env, module="tests.faults.noop_worker")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("Please pay the invoice by Friday.")
    (folder / "b.txt").write_text("The court ruled on the appeal.")
    (folder / "c.xyz").write_bytes(b"\x00 not a document")

    with Client(redis_url=clean_redis, database_url=sqlite_url) as client:
        with pytest.raises(ValueError, match="mutli_label"):
            client.submit("classify", [folder], labels=["billing", "legal"], mutli_label=True)
        with pytest.raises(ValueError, match="unknown task"):
            client.submit("clasify", [folder])
        with pytest.raises(LookupError):
            client.status("no-such-batch")

        sub = client.submit("classify", [folder], documents=[Document("mail-1", "Invoice attached.", {"from": "x"}),
                                                             {"id": "mail-2", "text": "See you in court."}],
                            labels=["billing", "legal"], multi_label=False)
        assert (sub.documents, sub.unreadable, sub.reused) == (5, 1, 0)
        status = client.wait(sub.batch, timeout=120)
        assert status.done and (status.succeeded, status.failed, status.total) == (4, 1, 5)

        rows = list(client.results(sub.batch))
        assert [r.status for r in rows].count("succeeded") == 4
        (bad,) = [r for r in rows if r.status == "failed"]
        assert bad.document.endswith("c.xyz") and bad.error_kind == "unsupported_format"
        inline = {r.id: r for r in rows if r.id}
        assert set(inline) == {"mail-1", "mail-2"}
        assert inline["mail-1"].metadata == {"from": "x"} and inline["mail-1"].result == {
            "label": "noop", "scores": {"noop": 1.0}}

        finished = [e for e in client.events(sub.batch, until_finished=True)]
        assert finished[-1]["type"] == "batch.finished"
        assert sum(finished[-1]["counts"].values()) == 5 and finished[-1]["counts"]["failed"] == 1
        # document events are written after their commit, so the worker's may land just after the
        # batch.finished that submit wrote on seeing every job finished (docqueue/events.py says so)
        wait_until(lambda: sum(1 for e in client.events(sub.batch) if e["type"] == "document.finished") == 5,
                   timeout=10, what="the five document.finished events")

        # summarize has no worker here: the batch waits, is cancelled, then retried
        waiting = client.submit("summarize", documents=[Document("s-1", "A long report. " * 20)], sentences=2)
        with pytest.raises(BatchFailedToFinish) as timed_out:
            client.wait(waiting.batch, timeout=0.5)
        assert isinstance(timed_out.value, TimeoutError) and timed_out.value.status.queued == 1
        assert client.cancel(waiting.batch) == 1
        assert client.status(waiting.batch).cancelled == 1
        with pytest.raises(ValueError, match="bogus"):
            client.retry(waiting.batch, kinds=["bogus"])
        again = client.retry(waiting.batch, cancelled=True)
        assert (again.jobs, again.reopened) == (1, 1)
        assert client.status(waiting.batch).queued == 1


def test_client_submits_a_generate_batch_file_and_chat_documents(sqlite_url: str, clean_redis: str,
                                                                  tmp_path: Path) -> None:
    """No worker: what is stored and queued, and the output file of a batch still running."""
    import json

    import redis

    from tests.helpers import cli

    requests = tmp_path / "requests.jsonl"
    body = {"model": "org/chat-model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    requests.write_text(json.dumps({"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
                                    "body": body}) + "\n"
                        + json.dumps({"custom_id": "r2", "method": "GET", "url": "/v1/chat/completions",
                                      "body": body}) + "\n", encoding="utf-8")
    with Client(redis_url=clean_redis, database_url=sqlite_url) as client:
        sub = client.submit("generate", [requests], documents=[Document.chat("inline-1", {**body, "seed": 3})])
        assert (sub.documents, sub.unreadable, sub.messages) == (3, 1, 1)
        rows = {r.id: r for r in client.results(sub.batch)}
        assert set(rows) == {"r1", "r2", "inline-1"}
        assert rows["r2"].status == "failed" and rows["r2"].error_kind == "invalid_request"
        assert "line 2: method" in str(rows["r2"].error_message)
        assert rows["r1"].status == rows["inline-1"].status == "queued"
    [message] = redis.Redis.from_url(clean_redis).lrange("generate", 0, -1)
    assert json.loads(message)["headers"]["task"] == "docqueue.generate"
    env = service_env(clean_redis, sqlite_url, tmp_path)
    out = cli(env, "results", sub.batch, "--format", "openai-batch")
    [line] = [json.loads(x) for x in out.stdout.splitlines()]
    assert line["custom_id"] == "r2" and line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["code"] == "invalid_request"
    assert "2 request(s) of batch" in out.stderr and "not finished yet" in out.stderr
