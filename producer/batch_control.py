"""Listing and cancelling batches: the database side of ``docqueue batches`` and ``docqueue cancel``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Batch, Document, Job, utcnow
from docqueue.schema import JobStatus
from producer.queries import batch_counts

#: Jobs not yet finished: what ``cancel`` stops.
UNFINISHED = tuple(s.value for s in JobStatus if not s.terminal)

#: A batch's state, derived from its jobs' states (never stored, so it cannot drift).
BATCH_STATES = ("queued", "running", "finished", "cancelled")


@dataclass
class BatchSummary:
    id: str
    task: str
    created_at: datetime
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def state(self) -> str:
        """queued (no job running or done yet), running, finished (every job ended), cancelled (ended,
        some cancelled)."""
        unfinished = sum(self.counts.get(s, 0) for s in UNFINISHED)
        if unfinished:
            # failures alone do not mean a worker started: unreadable files fail at submit time
            started = self.counts.get(JobStatus.running.value, 0) + self.counts.get(JobStatus.succeeded.value, 0)
            return "running" if started else "queued"
        return "cancelled" if self.counts.get(JobStatus.cancelled.value) else "finished"

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.id, "task": self.task, "created_at": self.created_at.isoformat(),
                "state": self.state, "total": self.total,
                **{s.value: self.counts.get(s.value, 0) for s in JobStatus}}


def list_batches(engine: Engine, *, since: datetime | None = None, state: str | None = None,
                 limit: int = 50) -> list[BatchSummary]:
    """The newest batches (created at or after ``since``), with their counts per job state.

    The state filter is applied after counting (it is derived), so ``limit`` bounds the batches
    looked at, newest first, not the rows returned."""
    query = sa.select(col(Batch.id), col(Batch.task), col(Batch.created_at)).order_by(col(Batch.created_at).desc())
    if since is not None:
        query = query.where(col(Batch.created_at) >= since)
    with engine.connect() as conn:
        batches = {bid: BatchSummary(bid, task, created) for bid, task, created in conn.execute(query.limit(limit))}
        if batches:
            counts = conn.execute(
                sa.select(col(Job.batch_id), col(Job.status), sa.func.count())
                .where(col(Job.batch_id).in_(list(batches))).group_by(col(Job.batch_id), col(Job.status)))
            for bid, status, n in counts:
                batches[bid].counts[status] = n
    found = list(batches.values())
    return [b for b in found if b.state == state] if state else found


def cancel_batch(engine: Engine, batch_id: str, now: datetime | None = None,
                 reason: str = "cancelled by docqueue cancel") -> int:
    """Mark the batch's unfinished jobs cancelled; returns how many. A job a worker is running right
    now is cancelled too: its outcome, when it comes, is not stored (outcomes are written only over
    unfinished jobs, ``workers.results``). Every job cancelled gets ``finished_at = now`` (how its
    completion event is found, ``docqueue.events``)."""
    batch_counts(engine, batch_id)  # raises for an unknown batch
    with engine.begin() as conn:
        return int(conn.execute(
            sa.update(Job).where(col(Job.batch_id) == batch_id, col(Job.status).in_(UNFINISHED))
            .values(status=JobStatus.cancelled.value, finished_at=now or utcnow(), error_kind=None,
                    error_message=reason)).rowcount)


def purge_batches(engine: Engine, *, before: datetime, dry_run: bool = False) -> list[str]:
    """Delete finished batches created before ``before``, with their documents and jobs (retention).

    A batch with any unfinished job is kept whatever its age: deleting it would make a worker's
    message name jobs that no longer exist. Results copied from a purged job keep their own copy
    (``reused_from`` then names a job that is gone)."""
    with engine.begin() as conn:
        old = sa.select(col(Batch.id)).where(col(Batch.created_at) < before)
        busy = sa.select(col(Job.batch_id)).where(col(Job.batch_id).in_(old), col(Job.status).in_(UNFINISHED))
        doomed = list(conn.execute(old.where(col(Batch.id).not_in(busy))).scalars())
        if doomed and not dry_run:
            for start in range(0, len(doomed), 500):
                chunk = doomed[start:start + 500]
                conn.execute(sa.delete(Job).where(col(Job.batch_id).in_(chunk)))
                conn.execute(sa.delete(Document).where(col(Document.batch_id).in_(chunk)))
                conn.execute(sa.delete(Batch).where(col(Batch.id).in_(chunk)))
    return doomed
