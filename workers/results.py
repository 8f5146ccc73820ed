"""Claiming jobs and recording their outcomes: the worker's only writes, each one transaction.

Idempotency: a job is claimed only while it is not finished, and an outcome is written only if the
job is still unfinished at that moment. A message delivered twice therefore runs at most the jobs
that have no outcome yet, and never stores a second outcome for a job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from docqueue.errors import ConfigurationError, DocumentError
from docqueue.models import Batch, Document, Job, utcnow
from docqueue.schema import JobStatus, TaskMessage, derived_id

_UNFINISHED = (JobStatus.queued.value, JobStatus.running.value)


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    text: str


def claim(engine: Engine, job_ids: Sequence[str], worker: str) -> list[ClaimedJob]:
    """Mark the unfinished jobs among ``job_ids`` as running here and return their texts.

    A ``running`` job is claimable again: its message was re-delivered, which happens only when
    the worker that had it died (acks_late + reject on worker lost, or the visibility timeout).
    """
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.update(Job)
            .where(Job.id.in_(job_ids), Job.status.in_(_UNFINISHED))
            .values(status=JobStatus.running.value, attempts=Job.attempts + 1, started_at=now, worker=worker)
        )
        rows = conn.execute(
            sa.select(Job.id, Document.text)
            .join(Document, Document.id == Job.document_id)
            .where(Job.id.in_(job_ids), Job.status == JobStatus.running.value, Job.worker == worker)
        ).all()
    by_id = {job_id: text for job_id, text in rows}
    return [ClaimedJob(j, by_id[j]) for j in job_ids if j in by_id]


def record(engine: Engine, outcomes: Iterable[tuple[str, dict[str, Any] | DocumentError]],
           model_id: str | None, model_revision: str | None) -> int:
    """Store every outcome in one transaction; returns how many jobs were actually updated."""
    now = utcnow()
    ok: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for job_id, outcome in outcomes:
        if isinstance(outcome, DocumentError):
            bad.append({"jid": job_id, "kind": outcome.kind, "msg": outcome.message})
        else:
            ok.append({"jid": job_id, "res": outcome})
    # (no IN here: executemany needs plain bind parameters)
    guard = (Job.id == sa.bindparam("jid"), sa.or_(*(Job.status == s for s in _UNFINISHED)))
    common = {"finished_at": now, "model_id": model_id, "model_revision": model_revision}
    updated = 0
    with engine.begin() as conn:
        if ok:
            stmt = sa.update(Job).where(*guard).values(
                status=JobStatus.succeeded.value, result=sa.bindparam("res"), error_kind=None,
                error_message=None, **common)
            updated += conn.execute(stmt, ok).rowcount
        if bad:
            stmt = sa.update(Job).where(*guard).values(
                status=JobStatus.failed.value, error_kind=sa.bindparam("kind"),
                error_message=sa.bindparam("msg"), **common)
            updated += conn.execute(stmt, bad).rowcount
    return updated


def _insert_ignoring_duplicates(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)
    else:
        raise ConfigurationError(f"docqueue supports SQLite and PostgreSQL, not {dialect}")


def materialize_inline(engine: Engine, task: str, message: TaskMessage) -> tuple[str, ...]:
    """Store the inline documents of an external publisher's message; return their job ids.

    Ids derive from (batch, document id), so a re-delivered message maps onto the same rows.
    """
    assert message.batch is not None  # guaranteed by TaskMessage validation
    now = utcnow()
    docs, jobs = [], []
    for position, doc in enumerate(message.documents):
        doc_id = derived_id(message.batch, doc.id)
        job_id = derived_id(message.batch, doc.id, task)  # same rule as message_job_ids
        docs.append({"id": doc_id, "batch_id": message.batch, "position": position, "source": doc.id,
                     "sha256": None, "text": doc.text.replace("\x00", ""), "meta": doc.metadata,
                     "created_at": now})
        jobs.append({"id": job_id, "batch_id": message.batch, "document_id": doc_id, "task": task,
                     "status": JobStatus.queued.value, "attempts": 0, "created_at": now})
    with engine.begin() as conn:
        _insert_ignoring_duplicates(conn, Batch, [{"id": message.batch, "task": task, "params": message.params,
                                                   "model": None, "created_at": now}])
        _insert_ignoring_duplicates(conn, Document, docs)
        _insert_ignoring_duplicates(conn, Job, jobs)
    return tuple(j["id"] for j in jobs)


def fail_unfinished(engine: Engine, job_ids: Sequence[str], kind: str, message: str) -> int:
    """Give up on jobs that could not be processed, so the batch finishes and says why."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(Job)
            .where(Job.id.in_(job_ids), Job.status.in_(_UNFINISHED))
            .values(status=JobStatus.failed.value, error_kind=kind, error_message=message, finished_at=utcnow())
        ).rowcount


def message_job_ids(task: str, message: TaskMessage) -> tuple[str, ...]:
    """The job ids a message stands for, in either form, without touching the database."""
    if message.jobs:
        return message.jobs
    assert message.batch is not None
    return tuple(derived_id(message.batch, d.id, task) for d in message.documents)
