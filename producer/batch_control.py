"""Listing, cancelling and purging batches: the database side of ``docqueue batches``, ``cancel`` and
``purge``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Batch, Document, InboxFile, Job, ScheduleRun, utcnow
from docqueue.schema import UNFINISHED, JobStatus
from producer.queries import batch_counts

#: Jobs not yet finished: what ``cancel`` stops.

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


def _purgeable(before: datetime) -> sa.Select[Any]:
    """The ids of the batches :func:`purge_batches` deletes."""
    old = sa.select(col(Batch.id)).where(col(Batch.created_at) < before)
    busy = sa.select(col(Job.batch_id)).where(col(Job.batch_id).in_(old), col(Job.status).in_(UNFINISHED))
    settling = sa.select(col(InboxFile.batch_id)).where(col(InboxFile.batch_id).in_(old),
                                                         col(InboxFile.state).in_(("submitted", "finishing")))
    return old.where(col(Batch.id).not_in(busy), col(Batch.id).not_in(settling))


def purge_batches(engine: Engine, *, before: datetime, dry_run: bool = False) -> list[str]:
    """Delete finished batches created before ``before``, with their documents and jobs (retention).

    A batch with any unfinished job is kept whatever its age: deleting it would make a worker's
    message name jobs that no longer exist. So is a batch of a schedule's inbox files that are not
    finished yet: their outbox file and move are written from its results, and without them a beat
    would write an outbox file with no documents and move the file as done. Results copied from a
    purged job keep their own copy (``reused_from`` then names a job that is gone)."""
    with engine.begin() as conn:
        doomed = list(conn.execute(_purgeable(before)).scalars())
        if doomed and not dry_run:
            for start in range(0, len(doomed), 500):
                chunk = doomed[start:start + 500]
                conn.execute(sa.delete(Job).where(col(Job.batch_id).in_(chunk)))
                conn.execute(sa.delete(Document).where(col(Document.batch_id).in_(chunk)))
                conn.execute(sa.delete(Batch).where(col(Batch.id).in_(chunk)))
    return doomed


def purge_schedule_runs(engine: Engine, *, before: datetime, dry_run: bool = False) -> int:
    """Delete the records of schedule runs fired before ``before`` (retention for ``schedule_run``,
    which grows by a row per run that did work); how many.

    Kept whatever their age: a run still ``running`` (recovery reads it), each schedule's newest run
    (``schedule list`` shows it) and a run whose batch still exists (an overlapping run is skipped
    while the previous batch has unfinished jobs, found through that row) unless :func:`purge_batches`
    deletes that batch with the same ``before``. The due-time cursor lives on the schedule, so no
    due time fires again."""
    newer = sa.orm.aliased(ScheduleRun)
    has_newer = sa.exists().where(col(newer.schedule_id) == col(ScheduleRun.schedule_id),
                                  col(newer.fired_at) > col(ScheduleRun.fired_at))
    batch_gone = sa.or_(col(ScheduleRun.batch_id).is_(None),
                        ~sa.exists().where(col(Batch.id) == col(ScheduleRun.batch_id)),
                        col(ScheduleRun.batch_id).in_(_purgeable(before)))  # a dry run's batches are still there
    doomed = sa.and_(col(ScheduleRun.fired_at) < before, col(ScheduleRun.outcome) != "running", has_newer,
                     batch_gone)
    with engine.begin() as conn:
        if dry_run:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ScheduleRun).where(doomed)).scalar_one())
        return int(conn.execute(sa.delete(ScheduleRun).where(doomed)).rowcount)

