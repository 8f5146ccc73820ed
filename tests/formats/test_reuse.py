"""Result reuse at submit time, on the real databases and Redis.

Outcomes are written with the worker's own ``claim``/``record`` (what a worker does after running
the model), so the producer's lookup is tested against rows exactly as workers leave them. The
end-to-end test with a real worker process is in test_end_to_end_formats.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from docqueue import db
from docqueue.errors import DocumentError
from docqueue.models import Job
from docqueue.names import queue_name
from docqueue.queue import make_celery
from docqueue.reuse import params_hash
from docqueue.settings import Settings, get_settings
from producer.loaders import iter_documents
from producer.submit import SubmitReport, submit_batch
from tests.formats import builders as b
from workers import results

PARAMS: dict[str, Any] = {"labels": ["contract", "invoice"], "descriptions": {}}


@pytest.fixture
def database_url(database_url: str) -> str:
    """conftest's SQLite/PostgreSQL pair, migrated: these tests call submit_batch in-process."""
    db.upgrade(database_url)
    return database_url


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    b.write(folder / "a.txt", b"Invoice 7731: 1 200 EUR due in 30 days.")
    b.write(folder / "b.txt", b"This Agreement is made between Acme Ltd and Beta GmbH.")
    b.write(folder / "copy-of-a.txt", b"Invoice 7731: 1 200 EUR due in 30 days.")  # same bytes as a.txt
    b.write(folder / "c.txt", b"Minutes of the meeting of 3 March.")
    return folder


def _submit(settings: Settings, inbox: Path, params: dict[str, Any] = PARAMS, force: bool = False) -> SubmitReport:
    engine = db.get_engine(settings.database_url)
    app = make_celery(settings, str(settings.redis_url))
    return submit_batch(settings=settings, engine=engine, app=app, task="classify",
                        documents=iter_documents([str(inbox)]), params=params, force=force)


def _jobs(engine: Engine, batch_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at, Job.id)))


def _run_as_worker(engine: Engine, batch_id: str, model: str) -> dict[str, str]:
    """Claim and record every queued job as a worker would: c.txt fails, the others get a label."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT j.id, d.source FROM job j JOIN document d ON d.id = j.document_id "
                                    "WHERE j.batch_id = :b AND j.status = 'queued'"), {"b": batch_id}).all()
    claimed = {c.job_id for c in results.claim(engine, [r[0] for r in rows], "test-worker")}
    outcomes: list[tuple[str, dict[str, Any] | DocumentError]] = [
        (job_id, DocumentError("engine_error", "boom") if source.endswith("c.txt") else {"label": Path(source).stem})
        for job_id, source in rows if job_id in claimed]
    results.record(engine, outcomes, model, "rev-1")
    return {Path(source).name: job_id for job_id, source in rows}


def test_resubmission_reuses_results(database_url: str, clean_redis: str, inbox: Path) -> None:
    settings = get_settings(database_url=database_url, redis_url=clean_redis)
    engine = db.get_engine(database_url)
    queue = redis.Redis.from_url(clean_redis)
    first = _submit(settings, inbox)
    assert (first.documents, first.queued, first.reused) == (4, 4, 0)
    ran = _run_as_worker(engine, first.batch_id, settings.classify_model)
    queue.delete(queue_name("classify"))

    second = _submit(settings, inbox)
    # a.txt, b.txt and copy-of-a.txt (same bytes) reuse; c.txt failed before, so it runs again
    assert (second.documents, second.reused, second.queued) == (4, 3, 1)
    assert queue.llen(queue_name("classify")) == second.messages == 1
    by_doc = {}
    with engine.connect() as conn:
        for job, source in conn.execute(sa.text(
                "SELECT j.id, d.source FROM job j JOIN document d ON d.id = j.document_id WHERE j.batch_id = :b"),
                {"b": second.batch_id}):
            by_doc[Path(source).name] = job
    jobs = {j.id: j for j in _jobs(engine, second.batch_id)}
    a = jobs[by_doc["a.txt"]]
    assert a.status == "succeeded" and a.attempts == 0 and a.started_at is None
    assert a.result == {"label": "a"} and a.model_id == settings.classify_model and a.model_revision == "rev-1"
    assert a.reused_from in (ran["a.txt"], ran["copy-of-a.txt"])  # either earlier run of the same bytes
    assert jobs[by_doc["b.txt"]].reused_from == ran["b.txt"]
    assert jobs[by_doc["c.txt"]].status == "queued" and jobs[by_doc["c.txt"]].reused_from is None
    assert all(j.params_hash == params_hash(PARAMS) for j in jobs.values())

    # a third submission points at the job that really ran the model, not at the copy
    third = _submit(settings, inbox)
    origins = {j.reused_from for j in _jobs(engine, third.batch_id) if j.reused_from}
    assert origins <= set(ran.values())

    # --force runs everything again
    forced = _submit(settings, inbox, force=True)
    assert (forced.reused, forced.queued) == (0, 4)


def test_reuse_needs_same_params_and_model(sqlite_url: str, clean_redis: str, inbox: Path) -> None:
    db.upgrade(sqlite_url)
    settings = get_settings(database_url=sqlite_url, redis_url=clean_redis)
    engine = db.get_engine(sqlite_url)
    first = _submit(settings, inbox)
    _run_as_worker(engine, first.batch_id, settings.classify_model)

    reordered = {"descriptions": {}, "labels": ["contract", "invoice"]}  # same parameters, other key order
    assert _submit(settings, inbox, reordered).reused == 3
    other_labels = {**PARAMS, "labels": ["contract", "invoice", "letter"]}
    assert _submit(settings, inbox, other_labels).reused == 0
    # naming the default model explicitly is the same model; naming another is not
    assert _submit(settings, inbox, {**PARAMS, "model": settings.classify_model}).reused == 3
    assert _submit(settings, inbox, {**PARAMS, "model": "some/other-model"}).reused == 0
    assert _submit(settings, inbox, {**PARAMS, "model": settings.classify_model,
                                     "model_revision": "rev-2"}).reused == 0


def test_params_hash_is_canonical() -> None:
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    assert params_hash({"a": 1, "model": "x", "model_revision": "y"}) == params_hash({"a": 1})
