"""Completion events on real Redis and real databases, without model workers: exactly one
batch.finished when writers finish a batch together, none while submit still stores it, a new one
when the batch runs again; events of submit-time failures and of cancel, read with ``docqueue events``."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from docqueue.db import ensure_schema, upgrade
from docqueue.errors import DocumentError
from docqueue.events import EventSink, close_batch, emit_finished, finish_batches, open_batch
from docqueue.models import Job, utcnow
from docqueue.queue import make_celery
from docqueue.schema import TaskMessage
from docqueue.settings import get_settings
from tests.conftest import service_env
from tests.event_checks import of_batch, stream
from tests.helpers import cli, cli_json, migrate_if_postgres, results_jsonl
from workers import results


def _sink(redis_url: str, database_url: str) -> EventSink:
    settings = get_settings(redis_url=redis_url, database_url=database_url)
    return EventSink(make_celery(settings, redis_url), settings)


def _batch(engine: sa.Engine, batch: str, n: int) -> list[str]:
    message = TaskMessage(batch=batch, params={"labels": ["a", "b"]},
                          documents=tuple({"id": f"doc-{i}", "text": f"text {i}"} for i in range(n)))  # type: ignore[misc]
    return list(results.materialize_inline(engine, "classify", message))


def _finish(engine: sa.Engine, sink: EventSink, job_ids: list[str], barrier: threading.Barrier) -> None:
    """What a worker does after its engine run: record (one transaction), then emit."""
    outcomes: list[tuple[str, dict | DocumentError]] = [
        (j, {"label": "a"}) if k % 3 else (j, DocumentError("empty_document", "no text"))
        for k, j in enumerate(job_ids)]
    barrier.wait()
    now = utcnow()
    results.record_groups(engine, [results.RecordGroup(outcomes, "m", None)], now=now)
    emit_finished(sink, engine, finished_at=now, job_ids=job_ids)


def test_one_batch_finished_when_writers_finish_together_and_again_after_a_rerun(
        database_url: str, clean_redis: str) -> None:
    upgrade(database_url)
    engine = ensure_schema(database_url)
    sink = _sink(clean_redis, database_url)
    for round_ in range(6):  # each round is a fresh race between 4 writers finishing one batch
        batch = f"race-{round_}"
        ids = _batch(engine, batch, 8)
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=_finish, args=(engine, sink, ids[k::4], barrier)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        docs = of_batch(clean_redis, batch, "document.finished")
        finished = of_batch(clean_redis, batch, "batch.finished")
        assert sorted(d["job_id"] for d in docs) == sorted(ids)  # one event per document, none twice
        assert len(finished) == 1, finished
        assert finished[0]["counts"] == {"succeeded": 4, "failed": 4, "cancelled": 0} and finished[0]["total"] == 8

    # held open (submit still storing it): finishing its jobs does not finish the batch
    ids = _batch(engine, "held", 2)
    open_batch(sink, "held")
    now = utcnow()
    results.record(engine, [(j, {"label": "b"}) for j in ids], "m", None)
    results.record_groups(engine, [], now=now)
    assert finish_batches(sink, engine, ["held"]) == []
    assert of_batch(clean_redis, "held", "batch.finished") == []
    assert close_batch(sink, engine, "held") == ["held"]
    assert finish_batches(sink, engine, ["held"]) == []  # the same finish is not announced twice
    # run again (as docqueue retry reopens jobs): a later finish is a new batch.finished
    with engine.begin() as conn:
        conn.execute(sa.update(Job).where(Job.batch_id == "held").values(status="queued", finished_at=None,
                                                                          result=None))
    later = utcnow() + timedelta(milliseconds=5)
    results.record_groups(engine, [results.RecordGroup([(ids[0], DocumentError("engine_error", "boom")),
                                                        (ids[1], {"label": "a"})], "m", None)], now=later)
    emit_finished(sink, engine, finished_at=later, job_ids=ids)
    finished = of_batch(clean_redis, "held", "batch.finished")
    assert [f["counts"]["failed"] for f in finished] == [0, 1]
    rerun = of_batch(clean_redis, "held", "document.finished")[-2:]
    assert {(d["external_id"], d["status"]) for d in rerun} == {("doc-0", "failed"), ("doc-1", "succeeded")}
    assert next(d for d in rerun if d["status"] == "failed")["error"] == {"kind": "engine_error", "message": "boom"}


def test_submit_time_failures_and_cancel_emit_events_read_by_the_cli(database_url: str, clean_redis: str,
                                                                     tmp_path: Path) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    for i in range(2):
        (tmp_path / f"note{i}.txt").write_text(f"Invoice {i}: amount due, payable within 30 days.")
    batch = cli_json(env, "submit", "classify", str(tmp_path / "note0.txt"), str(tmp_path / "note1.txt"),
                     str(tmp_path / "missing.txt"), "--labels", "contract,invoice", "--json")["batch"]
    # no worker runs: only the file that could not be read is finished, by submit itself
    docs = of_batch(clean_redis, batch, "document.finished")
    assert [(d["status"], d["error"]["kind"]) for d in docs] == [("failed", "not_found")]
    assert of_batch(clean_redis, batch, "batch.finished") == []

    assert cli_json(env, "cancel", batch, "--json")["cancelled"] == 2
    docs = of_batch(clean_redis, batch, "document.finished")
    assert sorted(d["status"] for d in docs) == ["cancelled", "cancelled", "failed"]
    assert all(d["error"] is None and d["result"] is None for d in docs if d["status"] == "cancelled")
    (finished,) = of_batch(clean_redis, batch, "batch.finished")
    assert finished["state"] == "cancelled" and finished["counts"] == {"succeeded": 0, "failed": 1, "cancelled": 2}

    # the events match the database, document by document
    by_job = {d["job_id"]: d for d in docs}
    for row in results_jsonl(env, batch):
        event = next(d for d in by_job.values() if d["document_id"] == row["document_id"])
        assert (event["status"], event["document"], event["error"]) == (row["status"], row["document"], row["error"])

    # the CLI prints exactly the stream's events of that batch, oldest first, with their stream ids
    listed = [json.loads(line) for line in cli(env, "events", "--batch", batch, "--json").stdout.splitlines()]
    expected = [{"stream_id": i, **d} for i, _, d in stream(clean_redis) if d["batch"] == batch]
    assert listed == expected and len(listed) == 4
    assert listed[-1]["type"] == "batch.finished"
    after = cli(env, "events", "--batch", batch, "--since", listed[1]["stream_id"], "--json").stdout.splitlines()
    assert [json.loads(line)["stream_id"] for line in after] == [e["stream_id"] for e in listed[2:]]
    only = cli(env, "events", "--batch", batch, "--type", "batch.finished", "--follow", "--until-finished", "--json")
    assert [json.loads(line)["type"] for line in only.stdout.splitlines()] == ["batch.finished"]
    human = cli(env, "events", "--batch", batch).stdout
    assert "not_found" in human and "cancelled: 0 succeeded, 1 failed, 2 cancelled of 3" in human
    assert cli(env, "events", "--until-finished", check=False).returncode == 2
    bad = cli(env, "events", "--since", "yesterday", check=False)
    assert bad.returncode == 2 and "stream id" in bad.stderr

    # submit's webhook options are checked before anything is stored
    wrong = cli(env, "submit", "classify", str(tmp_path / "note0.txt"), "--labels", "a,b", "--webhook",
                "ftp://example.org/x", check=False)
    assert wrong.returncode == 2 and "http:// or https://" in wrong.stderr
    alone = cli(env, "submit", "classify", str(tmp_path / "note0.txt"), "--labels", "a,b", "--webhook-documents",
                check=False)
    assert alone.returncode == 2 and "--webhook-documents needs --webhook" in alone.stderr
