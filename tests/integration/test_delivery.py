"""Delivery guarantees on the real Redis with real worker processes: JSON only, at-least-once
delivery, and exactly one stored outcome per job."""

from __future__ import annotations

import json
from pathlib import Path

import redis
import sqlalchemy as sa

from docqueue.db import get_engine
from docqueue.models import Job
from docqueue.names import queue_name, task_name
from docqueue.queue import make_celery
from docqueue.settings import get_settings
from tests.conftest import FIXTURES, NOOP_WORKER, service_env
from tests.helpers import cli, cli_json, migrate_if_postgres, wait_until

LABELS = "contract,invoice,casual conversation"


def _jobs(database_url: str, batch: str) -> list[Job]:
    with get_engine(database_url).connect() as conn:
        return list(conn.execute(sa.select(Job).where(Job.batch_id == batch)).all())


def _done(env: dict[str, str], batch: str) -> bool:
    s = cli_json(env, "status", batch, "--json")
    return s["succeeded"] + s["failed"] == s["total"]


def test_pickled_message_is_refused(sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    # Two stored jobs, not yet enqueued anywhere: we publish their messages by hand.
    cli(env, "db", "upgrade")
    from producer.loaders import iter_documents
    from producer.submit import submit_batch

    settings = get_settings(database_url=sqlite_url, redis_url=clean_redis, batch_max_docs=1)
    sender = make_celery(settings, clean_redis)
    sender.conf.accept_content = ["json", "pickle"]
    report = submit_batch(settings=settings, engine=get_engine(sqlite_url), app=sender, task="classify",
                          documents=iter_documents([str(FIXTURES / "classify" / "invoice-7731.txt"),
                                                    str(FIXTURES / "classify" / "tatoeba-never-told-me.txt")]),
                          params={"labels": LABELS.split(",")})
    client = redis.Redis.from_url(clean_redis)
    messages = client.lrange(queue_name("classify"), 0, -1)
    assert len(messages) == 2
    client.delete(queue_name("classify"))
    pickled_job, json_job = [j.id for j in _jobs(sqlite_url, report.batch_id)][:2]
    kwargs = {"v": 1, "batch": report.batch_id, "params": {"labels": LABELS.split(",")}}
    sender.send_task(task_name("classify"), kwargs={**kwargs, "jobs": [pickled_job]}, queue="classify",
                     serializer="pickle")
    sender.send_task(task_name("classify"), kwargs={**kwargs, "jobs": [json_job]}, queue="classify")

    worker = start_worker(env, module=NOOP_WORKER)
    wait_until(lambda: {j.id: j.status for j in _jobs(sqlite_url, report.batch_id)}[json_job] == "succeeded",
               what="the JSON message to be processed")
    wait_until(lambda: client.llen("classify") == 0, what="the queue to drain")
    statuses = {j.id: j for j in _jobs(sqlite_url, report.batch_id)}
    assert statuses[pickled_job].status == "queued" and statuses[pickled_job].attempts == 0
    letters = [json.loads(line) for line in cli(env, "dlq", "list", "--json").stdout.splitlines()]
    assert [e["kind"] for e in letters] == ["wrong_content_type"], letters
    assert "application/x-python-serialize" in letters[0]["reason"]  # a pickle body is never opened
    assert "refused a" in worker.log()


def test_job_delivered_twice_is_stored_once(database_url: str, clean_redis: str, tmp_path: Path,
                                            start_worker) -> None:
    env = service_env(clean_redis, database_url, tmp_path)
    migrate_if_postgres(env)
    batch = cli_json(env, "submit", "classify", str(FIXTURES / "classify"), "--labels", LABELS, "--json")["batch"]
    client = redis.Redis.from_url(clean_redis)
    messages = client.lrange("classify", 0, -1)
    assert messages, "submit should have enqueued messages"
    for raw in messages:  # the very same bytes, delivered a second time
        client.lpush("classify", raw)

    worker = start_worker(env)  # the real engine: empty.txt fails as empty_document
    wait_until(lambda: _done(env, batch), what="batch to finish")
    wait_until(lambda: client.llen("classify") == 0, what="the duplicates to be consumed")
    wait_until(lambda: worker.log().count("succeeded in") >= 2 * len(messages), what="every delivery to be run")
    jobs = _jobs(database_url, batch)
    ran = [j for j in jobs if j.error_kind != "empty_document"]
    assert all(j.attempts == 1 for j in ran), [(j.id, j.attempts) for j in ran]
    assert sum(j.status == "succeeded" for j in jobs) == 4
    assert "none to run (finished, cancelled or running elsewhere)" in worker.log()


def test_worker_killed_mid_batch_loses_nothing(database_url: str, clean_redis: str, tmp_path: Path,
                                              start_worker) -> None:
    """SIGKILL the whole worker while it holds a claimed batch: after the visibility timeout the
    message is delivered to the next worker, every job finishes, and none is stored twice."""
    env = service_env(clean_redis, database_url, tmp_path, DOCQUEUE_VISIBILITY_TIMEOUT="4",
                      DOCQUEUE_HEARTBEAT_INTERVAL_S="1", DOCQUEUE_HEARTBEAT_TIMEOUT_S="3")
    migrate_if_postgres(env)
    contract = (FIXTURES / "classify" / "energous-strategic-alliance.txt").read_text()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(48):  # long documents: several model windows each, so a batch takes a while
        (inbox / f"doc{i:02d}.txt").write_text(f"Copy {i}.\n" + contract * 3)
    batch = cli_json(env, "submit", "classify", str(inbox), "--labels", LABELS, "--json")["batch"]

    first = start_worker(env)
    wait_until(lambda: any(j.status == "running" for j in _jobs(database_url, batch)), interval=0.05,
               what="the first worker to claim a batch")
    first.kill()
    stuck = [j for j in _jobs(database_url, batch) if j.status == "running"]
    assert stuck, "the kill should have landed mid-batch"

    start_worker(env)
    wait_until(lambda: _done(env, batch), timeout=300, what="batch to finish after the crash")
    jobs = {j.id: j for j in _jobs(database_url, batch)}
    assert all(j.status == "succeeded" for j in jobs.values())
    assert all(jobs[j.id].attempts == 2 for j in stuck)  # claimed by the dead worker, then once more
    assert all(j.result["label"] == "contract" for j in jobs.values())
