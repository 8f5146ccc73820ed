"""Runs whose process died mid-run (killed, its machine lost): found by a missing heartbeat, and
resumed from what they stored.

A run stores its files' documents as one batch, in one fixed order (its claimed files sorted by
path, ``claimed_order``), chunk by chunk: what a dead run stored is a prefix of that sequence.
Resuming reads the files again in the same order, skips the documents already stored and
submits the rest into the same batch, so no document runs twice and none is lost; the jobs it
stored but had not enqueued are published by the worker's reaper (``pending`` past its bound).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Document, InboxFile, Schedule, ScheduleRun, utcnow
from docqueue.settings import Settings
from producer.schedules import locks
from producer.schedules.locks import heartbeat_lifetime


class ScheduleRunner(Protocol):
    """What recovery needs of the runner (``producer.schedules.runner.ScheduleRunner``), named here
    so that the runner, which calls recovery, is not imported back (no import circle)."""

    settings: Settings
    engine: Engine
    redis: Any
    token: str

    def resume(self, schedule: Schedule, run: ScheduleRun, why: str) -> Any: ...


def recover_abandoned(runner: ScheduleRunner, schedule: Schedule) -> int:
    """Resume the runs of this schedule left ``running`` by a process that died; how many.

    A run is abandoned when its heartbeat is missing at two looks at least its lifetime apart: a
    live run renews it within ``schedule_heartbeat_s``, so a Redis that restarted empty (and lost
    every heartbeat at once) makes no live run look dead."""
    lifetime = heartbeat_lifetime(runner.settings.schedule_heartbeat_s)
    now = utcnow()
    with runner.engine.connect() as conn:
        runs = [ScheduleRun.model_validate(r._mapping) for r in conn.execute(sa.select(ScheduleRun).where(
            col(ScheduleRun.schedule_id) == schedule.id, col(ScheduleRun.outcome) == "running",
            col(ScheduleRun.fired_at) < now - timedelta(seconds=lifetime)))]
    recovered = 0
    for run in runs:
        if not locks.silent_twice(runner.redis, run.id, now.timestamp(), lifetime):
            continue
        # one beat resumes it; the others see its heartbeat again from the next look on
        if not locks.take_resume(runner.redis, run.id, runner.token, runner.settings.schedule_lock_ttl_s):
            continue
        runner.resume(schedule, run, f"its process stopped mid-run (no heartbeat for {lifetime:g}+ s)")
        locks.forget_suspicion(runner.redis, run.id)
        recovered += 1
    return recovered


def claimed_order(engine: sa.engine.Engine, schedule_id: str, batch_id: str) -> list[InboxFile]:
    """The files a run claimed for ``batch_id``, in the order it submits them (by path)."""
    with engine.connect() as conn:
        return [InboxFile.model_validate(r._mapping) for r in conn.execute(
            sa.select(InboxFile).where(col(InboxFile.schedule_id) == schedule_id,
                                       col(InboxFile.batch_id) == batch_id).order_by(col(InboxFile.path)))]


def stored_documents(engine: sa.engine.Engine, batch_id: str) -> int:
    """How many documents of the batch are stored (a prefix of the run's sequence)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(col(Document.batch_id) == batch_id)).scalar_one())


def describe_resume(run: ScheduleRun, why: str, before: int, total: int) -> str:
    """The run's detail once resumed: what stopped it, what it had stored, what the resume added."""
    return (f"interrupted: {why}; resumed from what it stored: {before} document(s) kept, "
            f"{max(total - before, 0)} more submitted to batch {run.batch_id}")
