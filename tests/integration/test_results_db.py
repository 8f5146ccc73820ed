"""Claim and record on real databases (SQLite and PostgreSQL): the idempotency rules themselves."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from docqueue.db import ensure_schema, upgrade
from docqueue.errors import DocumentError
from docqueue.models import Job
from docqueue.schema import TaskMessage
from workers import results


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    return ensure_schema(url)


def _inline(n: int) -> TaskMessage:
    return TaskMessage(batch="b1", params={"labels": ["a", "b"]},
                       documents=tuple({"id": f"d{i}", "text": f"text {i}"} for i in range(n)))  # type: ignore[misc]


def _job(engine: sa.Engine, job_id: str) -> Job:
    with engine.connect() as conn:
        return conn.execute(sa.select(Job).where(Job.id == job_id)).one()


def test_outcome_is_stored_once(engine: sa.Engine) -> None:
    job_ids = results.materialize_inline(engine, "classify", _inline(3))
    assert results.materialize_inline(engine, "classify", _inline(3)) == job_ids  # same rows again
    assert job_ids == results.message_job_ids("classify", _inline(3))
    claimed = results.claim(engine, job_ids, "w1")
    assert [c.job_id for c in claimed] == list(job_ids) and claimed[0].text == "text 0"

    first = [(job_ids[0], {"label": "a"}), (job_ids[1], DocumentError("empty_document", "nothing")),
             (job_ids[2], {"label": "b"})]
    assert results.record(engine, first, "m", "r1") == 3
    done = _job(engine, job_ids[0])
    # a re-delivery: nothing left to claim, and a late write changes nothing
    assert results.claim(engine, job_ids, "w2") == []
    assert results.record(engine, [(job_ids[0], {"label": "b"}), (job_ids[1], {"label": "a"})], "m", "r2") == 0
    again = _job(engine, job_ids[0])
    assert again.result == {"label": "a"} and again.finished_at == done.finished_at and again.attempts == 1
    failed = _job(engine, job_ids[1])
    assert failed.status == "failed" and failed.error_kind == "empty_document" and failed.result is None


def test_running_job_of_a_dead_worker_is_claimed_again(engine: sa.Engine) -> None:
    job_ids = results.materialize_inline(engine, "classify", _inline(2))
    results.claim(engine, job_ids, "dead-worker")
    reclaimed = results.claim(engine, job_ids, "w2")
    assert len(reclaimed) == 2
    assert _job(engine, job_ids[0]).attempts == 2 and _job(engine, job_ids[0]).worker == "w2"


def test_fail_unfinished_leaves_finished_jobs_alone(engine: sa.Engine) -> None:
    job_ids = results.materialize_inline(engine, "classify", _inline(2))
    results.claim(engine, job_ids, "w")
    results.record(engine, [(job_ids[0], {"label": "a"})], "m", None)
    assert results.fail_unfinished(engine, job_ids, "internal_error", "gave up") == 1
    assert _job(engine, job_ids[0]).status == "succeeded"
    assert _job(engine, job_ids[1]).error_kind == "internal_error"
