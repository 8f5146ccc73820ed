"""A trickle of one-document messages is processed in batches, on the real Redis with a real worker.

The worker, handed one inline message, takes the messages already waiting on its queue into the
same batch (``workers.gather``). Jobs claimed together share one ``started_at`` (one UPDATE), and the
worker logs each batch's message and engine-run counts: both are checked, along with one stored
outcome per job and nothing left unacknowledged on Redis.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlmodel import col

from docqueue.db import get_engine
from docqueue.models import Document, Job
from docqueue.names import task_name
from docqueue.queue import make_celery
from docqueue.schema import InlineDocument, TaskMessage
from docqueue.settings import get_settings
from tests.conftest import FIXTURES, service_env
from tests.helpers import cli, cli_json, wait_until

LABELS = ["contract", "invoice", "casual conversation"]
#: Tatoeba English sentences (CC BY 2.0 FR), the kind of text a chat integration sends one by one.
SENTENCES = [
    "I don't like you anymore.", "Who wants some hot chocolate?", "Life is not long, it is wide!",
    "Do you need me to give you some money?", "I don't know what to do anymore.",
    "It will take five to ten years for the technology to be ready.", "That's fine with me.",
    "Please send me the invoice by Friday.",
]
BATCH_LINE = re.compile(r"stored (\d+) outcome\(s\) for (\d+) job\(s\) from (\d+) message\(s\) in (\d+) engine run")


def _publish(redis_url: str, batch: str, n: int, first: int = 0, **options: object) -> None:
    settings = get_settings(redis_url=redis_url)
    app = make_celery(settings, redis_url)
    if options.get("serializer") == "pickle":
        app.conf.accept_content = ["json", "pickle"]
    with app.producer_or_acquire() as producer:
        for i in range(first, first + n):
            # Trailing spaces make each text unique (the tokenizer drops them): an identical text would
            # reuse an earlier result (docqueue.reuse) instead of being gathered, which is tested here.
            text = SENTENCES[i % len(SENTENCES)] + " " * (i // len(SENTENCES))
            message = TaskMessage(batch=batch, params={"labels": LABELS},
                                  documents=(InlineDocument(id=f"msg-{i}", text=text),))
            app.send_task(task_name("classify"), kwargs=message.model_dump(mode="json"), queue="classify",
                          producer=producer, **options)


def _jobs(database_url: str, batch: str) -> list[Job]:
    with get_engine(database_url).connect() as conn:
        return list(conn.execute(sa.select(Job).where(col(Job.batch_id) == batch)).all())


def _results(database_url: str, batch: str) -> list[tuple[str, dict]]:
    with get_engine(database_url).connect() as conn:
        return [(source, result) for source, result in conn.execute(
            sa.select(col(Document.source), col(Job.result)).join(Document, col(Document.id) == col(Job.document_id))
            .where(col(Job.batch_id) == batch)).all()]


def _done(database_url: str, batch: str, n: int) -> bool:
    jobs = _jobs(database_url, batch)
    return len(jobs) == n and all(j.status in ("succeeded", "failed") for j in jobs)


def test_waiting_single_document_messages_run_as_batches(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                          start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_BATCH_MAX_DOCS="16")
    cli(env, "db", "upgrade")
    n = 40
    _publish(clean_redis, "chat-export", n)
    client = redis.Redis.from_url(clean_redis)
    assert client.llen("classify") == n

    worker = start_worker(env)
    wait_until(lambda: _done(sqlite_url, "chat-export", n), what="every trickled document to finish")
    jobs = _jobs(sqlite_url, "chat-export")
    assert len(jobs) == n and all(j.status == "succeeded" for j in jobs)
    assert all(j.attempts == 1 for j in jobs)  # each claimed once, its outcome stored once
    # each outcome belongs to its own document: copies of a sentence, in different batches, agree
    by_sentence: dict[str, set[str]] = {}
    for source, result in _results(sqlite_url, "chat-export"):
        by_sentence.setdefault(SENTENCES[int(source.split("-")[1]) % len(SENTENCES)], set()).add(result["label"])
    assert len(by_sentence) == len(SENTENCES) and all(len(v) == 1 for v in by_sentence.values()), by_sentence
    assert by_sentence["Please send me the invoice by Friday."] == {"invoice"}

    # claimed together = one started_at; 40 messages, budget 16 documents: at most a handful of batches
    batches = Counter(j.started_at for j in jobs)
    assert len(batches) <= 6 and max(batches.values()) >= 8, batches
    wait_until(lambda: sum(int(m[2]) for m in BATCH_LINE.findall(worker.log())) >= n, what="batch log lines")
    runs = [tuple(int(x) for x in m) for m in BATCH_LINE.findall(worker.log())]
    assert sum(r[2] for r in runs) == n  # every message accounted for exactly once
    assert sum(r[3] for r in runs) < n / 4  # far fewer forward runs than messages
    assert max(r[2] for r in runs) <= 16  # the budget holds

    # every gathered message was acknowledged after its results were stored
    wait_until(lambda: client.llen("classify") == 0 and client.hlen("unacked") == 0, what="queue drained and acked")
    status = cli_json(env, "status", "chat-export", "--json")
    assert status["succeeded"] == n and status["total"] == n


def test_a_message_the_gatherer_cannot_take_goes_back_to_celery(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                                start_worker) -> None:
    """A pickled message among the trickle is not gathered: the transport dead-letters it where it
    is popped (``docqueue.transport``), while the JSON messages around it are all processed."""
    env = service_env(clean_redis, sqlite_url, tmp_path)
    cli(env, "db", "upgrade")
    _publish(clean_redis, "mixed", 3)
    _publish(clean_redis, "mixed", 1, first=3, serializer="pickle")
    _publish(clean_redis, "mixed", 3, first=4)
    worker = start_worker(env)
    client = redis.Redis.from_url(clean_redis)
    wait_until(lambda: client.llen("classify") == 0 and client.hlen("unacked") == 0, what="queue drained")
    wait_until(lambda: len([j for j in _jobs(sqlite_url, "mixed") if j.status == "succeeded"]) == 6,
               what="the six JSON documents")
    assert len(_jobs(sqlite_url, "mixed")) == 6  # the pickled one was never materialised
    assert re.search(r"refused a \d+-byte item on queue classify: wrong_content_type", worker.log())


def test_worker_killed_mid_gathered_batch_loses_nothing(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                        start_worker) -> None:
    """SIGKILL while a gathered batch runs: its unacknowledged messages come back after the
    visibility timeout, the next worker finishes every job, and no outcome is stored twice."""
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_VISIBILITY_TIMEOUT="4",
                      DOCQUEUE_HEARTBEAT_INTERVAL_S="1", DOCQUEUE_HEARTBEAT_TIMEOUT_S="3")
    cli(env, "db", "upgrade")
    contract = (FIXTURES / "classify" / "energous-strategic-alliance.txt").read_text()
    settings = get_settings(redis_url=clean_redis)
    app = make_celery(settings, clean_redis)
    n = 24
    with app.producer_or_acquire() as producer:
        for i in range(n):  # long documents (several windows each), so the batch takes a while
            message = TaskMessage(batch="crash", params={"labels": LABELS},
                                  documents=(InlineDocument(id=f"c{i}", text=f"Copy {i}.\n" + contract * 2),))
            app.send_task(task_name("classify"), kwargs=message.model_dump(mode="json"), queue="classify",
                          producer=producer)
    client = redis.Redis.from_url(clean_redis)
    first = start_worker(env)
    wait_until(lambda: sum(j.status == "running" for j in _jobs(sqlite_url, "crash")) > 1, interval=0.05,
               what="the first worker to claim a gathered batch")
    first.kill()
    stuck = [j for j in _jobs(sqlite_url, "crash") if j.status == "running"]
    assert len(stuck) > 1, "the kill should have landed mid-batch, on gathered messages"
    assert client.hlen("unacked") >= len(stuck)  # pulled, not acknowledged: recoverable

    start_worker(env)
    wait_until(lambda: _done(sqlite_url, "crash", n), timeout=300, what="every job after the crash")
    jobs = {j.id: j for j in _jobs(sqlite_url, "crash")}
    assert all(j.status == "succeeded" for j in jobs.values())
    assert all(jobs[j.id].attempts == 2 for j in stuck)  # claimed by the dead worker, then once more
    assert all(j.result["label"] == "contract" for j in jobs.values())
