"""The life cycle of a schedule run: due times looked at, a run fired (locked, recorded, its files
claimed and submitted), its record finished; and the resumption of a run whose process died.

Firing a run means reading its sources where this process runs and submitting them as one batch
through the producer's one submission path (``producer.submission``), so ``docqueue beat`` needs
the documents' folders and the database, never torch, and a broker or database fault is reported
on the run exactly as ``submit`` reports it. Two beats may run side by side: each (schedule, due
time) is claimed with a Redis ``SET NX EX`` lock before anything happens, and the run's row is
unique per (schedule, due time), so a run is fired once even after the lock has expired.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import Celery
from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from docqueue.models import InboxFile, Job, Schedule, ScheduleRun, utcnow
from docqueue.schema import new_id
from docqueue.secrets import mask_url
from docqueue.settings import Settings
from producer.batch_control import UNFINISHED
from producer.loaders import LoadedDocument, LoadOptions, load_task_path
from producer.schedules import recovery
from producer.schedules.inbox import claim_files, load_options, scan_sources
from producer.schedules.locks import RunHeartbeat, alive_key, take_due
from producer.schedules.outbox import finish_files
from producer.schedules.timing import aware, due_between, next_due, plan_runs, utc
from producer.submission import SubmissionFailed, SubmitRequest, ensure_broker, submit_documents

log = logging.getLogger("docqueue.beat")

#: Outcomes of one run (``schedule_run.outcome``).
RUNNING, SUBMITTED, SKIPPED, NOTHING_NEW, ERROR = "running", "submitted", "skipped", "nothing_new", "error"


class ScheduleRunner:
    """Fires schedules and finishes their inbox batches; shared by ``docqueue beat``, ``docqueue
    watch`` and ``docqueue schedule run``."""

    def __init__(self, settings: Settings, engine: Engine, app: Celery, broker_url: str, redis: Redis) -> None:
        self.settings, self.engine, self.app, self.broker_url, self.redis = settings, engine, app, broker_url, redis
        self.token = new_id()

    # ---------------------------------------------------------------------------------- the tick
    def tick(self, only: str | None = None, max_interval: float = 5.0) -> float:
        """Fire what is due of every active schedule (or of ``only``); seconds until the next due time."""
        now = utcnow()
        query = sa.select(Schedule).where(col(Schedule.paused).is_(False))
        query = query.where(col(Schedule.id) == only) if only else query.where(col(Schedule.foreground).is_(False))
        with self.engine.connect() as conn:
            schedules = [Schedule.model_validate(row._mapping) for row in conn.execute(query)]
        wait = max_interval
        for schedule in schedules:
            try:
                self.tick_one(schedule, now)
                after = max(now, aware(schedule.cursor_at) or now)
                wait = min(wait, (next_due(schedule, after) - utcnow()).total_seconds())
            except Exception:  # one broken schedule (a vanished timezone, a bad row) must not stop the others
                log.exception("schedule %s: tick failed", schedule.name)
        return max(wait, 0.05)

    def tick_one(self, schedule: Schedule, now: datetime) -> list[ScheduleRun]:
        """Finish its finished batches, then fire its due runs per its catch-up policy and move its
        cursor past every due time looked at (fired, skipped, or dropped by the policy)."""
        self.recover_abandoned(schedule)
        self.finish(schedule)
        after = aware(schedule.cursor_at) or utc(schedule.created_at)
        dues = due_between(schedule, after, now, self.settings.schedule_catch_up_max)
        if not dues:
            return []
        plan = plan_runs(schedule.catch_up, dues, now, self.settings.schedule_misfire_grace_s)
        if len(plan) < len(dues):
            log.info("schedule %s: %d due time(s) up to %s missed, %s (--catch-up %s)", schedule.name,
                     len(dues) - len(plan), dues[-1].isoformat(), "newest fired" if plan else "none fired",
                     schedule.catch_up)
        runs = [run for due, trigger in plan if (run := self.fire(schedule, due, trigger)) is not None]
        with self.engine.begin() as conn:  # only forward: a slower beat must not move it back
            conn.execute(sa.update(Schedule).where(
                col(Schedule.id) == schedule.id,
                sa.or_(col(Schedule.cursor_at).is_(None), col(Schedule.cursor_at) < dues[-1]))
                .values(cursor_at=dues[-1]))
        schedule.cursor_at = dues[-1]
        return runs

    # ---------------------------------------------------------------------------------- one run
    def fire(self, schedule: Schedule, due: datetime, trigger: str) -> ScheduleRun | None:
        """Run the schedule for ``due`` unless another beat has (or had) it; the run's row, or None."""
        if not take_due(self.redis, schedule.id, due, self.token, self.settings.schedule_lock_ttl_s):
            log.info("schedule %s: due %s is held by another beat", schedule.name, due.isoformat())
            return None
        run = ScheduleRun(id=new_id(), schedule_id=schedule.id, due_at=due, trigger=trigger, outcome=RUNNING)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(ScheduleRun).values(**run.model_dump()))
        except IntegrityError:  # fired before, by a beat whose lock has since expired
            log.info("schedule %s: due %s was fired already", schedule.name, due.isoformat())
            return None
        with RunHeartbeat(self.redis, alive_key(run.id), self.settings.schedule_heartbeat_s):
            try:
                self._run(schedule, run)
            except Exception as e:  # recorded on the run; beat goes on with the next one
                log.exception("schedule %s: run for %s failed", schedule.name, due.isoformat())
                run.outcome, run.detail = ERROR, f"{type(e).__name__}: {mask_url(str(e))}"
            with self.engine.begin() as conn:
                # only over "running": a run taken for abandoned keeps that verdict (its files are gone)
                conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id,
                                                          col(ScheduleRun.outcome) == RUNNING).values(
                    outcome=run.outcome, batch_id=run.batch_id, documents=run.documents, detail=run.detail))
                if run.outcome in (SKIPPED, NOTHING_NEW) and run.trigger == "schedule":
                    self._collapse_idle(conn, run)
        log.log(logging.DEBUG if run.outcome == NOTHING_NEW else logging.INFO,  # idle polls: quiet at INFO
                "schedule %s: %s run for %s: %s%s%s", schedule.name, trigger, due.isoformat(), run.outcome,
                 f" batch {run.batch_id} ({run.documents} documents)" if run.batch_id else "",
                 f" ({run.detail})" if run.detail else "")
        return run

    @staticmethod
    def _collapse_idle(conn: Any, run: ScheduleRun) -> None:
        """An inbox looked at every few seconds finds nothing most of the time: of a streak of on-time
        runs with the same idle outcome and detail only the newest row is kept, so the table grows with
        the work done, not with the clock (catch-up and manual runs are all kept). The rows deleted are
        of due times the cursor has passed."""
        previous = conn.execute(
            sa.select(col(ScheduleRun.id), col(ScheduleRun.outcome), col(ScheduleRun.detail),
                      col(ScheduleRun.trigger))
            .where(col(ScheduleRun.schedule_id) == run.schedule_id, col(ScheduleRun.id) != run.id,
                   col(ScheduleRun.due_at) < run.due_at)
            .order_by(col(ScheduleRun.due_at).desc()).limit(1)).one_or_none()
        if previous is not None and tuple(previous[1:]) == (run.outcome, run.detail, run.trigger):
            conn.execute(sa.delete(ScheduleRun).where(col(ScheduleRun.id) == previous[0]))

    def _unfinished_previous(self, schedule: Schedule, run_id: str) -> tuple[str, int] | None:
        with self.engine.connect() as conn:
            batch = conn.execute(
                sa.select(col(ScheduleRun.batch_id))
                .where(col(ScheduleRun.schedule_id) == schedule.id, col(ScheduleRun.id) != run_id,
                       col(ScheduleRun.batch_id).is_not(None))
                .order_by(col(ScheduleRun.fired_at).desc()).limit(1)).scalar_one_or_none()
            if batch is None:
                return None
            left = conn.execute(sa.select(sa.func.count()).where(
                col(Job.batch_id) == batch, col(Job.status).in_(UNFINISHED))).scalar_one()
        return (batch, int(left)) if left else None

    def _request(self, schedule: Schedule, batch_id: str) -> SubmitRequest:
        return SubmitRequest(task=schedule.task, params=schedule.params, batch_id=batch_id,
                             force=bool((schedule.load_options or {}).get("force")), schedule_id=schedule.id,
                             webhook_url=schedule.webhook_url, webhook_documents=schedule.webhook_documents)

    def _run(self, schedule: Schedule, run: ScheduleRun) -> None:
        if schedule.overlap == "skip" and (busy := self._unfinished_previous(schedule, run.id)):
            run.outcome, run.detail = SKIPPED, f"batch {busy[0]} of the previous run has {busy[1]} unfinished jobs"
            return
        try:  # before any file is claimed: a broker we cannot use must leave the files for a later run
            ensure_broker(self.broker_url, self.settings)
        except SubmissionFailed as e:
            run.outcome, run.detail = ERROR, str(e)
            return
        scan = scan_sources(schedule)
        batch_id = new_id()
        # by path: the order a resumed run reads them in again (producer.schedules.recovery)
        files = sorted(claim_files(self.engine, schedule.id, batch_id, scan.files), key=lambda f: f.path)
        if files:  # before anything is stored: what a recovery of this run, should it die, resumes
            with self.engine.begin() as conn:
                conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id).values(batch_id=batch_id))
        notes = [f"{n} {what}" for n, what in ((scan.waiting, "file(s) still being written wait"),
                                              (scan.missing, "source(s) missing")) if n]
        run.detail = "; ".join(notes) or None
        if not files:
            run.outcome = NOTHING_NEW
            return
        run.batch_id = batch_id
        self._submit(schedule, run, [f.path for f in files], stored=0)

    def _submit(self, schedule: Schedule, run: ScheduleRun, paths: list[str], stored: int) -> None:
        """Submit the documents of ``paths`` (in this order) as the run's batch, the first ``stored`` of
        them skipped (a resumed run stored those before it died); each file's place in the batch is
        recorded for the outbox, also when the submission fails part-way."""
        assert run.batch_id is not None
        positions: dict[str, tuple[int, int]] = {}
        documents = self._documents(schedule.task, paths, load_options(schedule).resolved(), positions, skip=stored)
        try:
            report = submit_documents(self._request(schedule, run.batch_id), documents, settings=self.settings,
                                      engine=self.engine, app=self.app, broker_url=self.broker_url,
                                      stored_already=stored)
        except SubmissionFailed as e:
            run.documents, run.outcome = e.stored, ERROR
            run.detail = "; ".join(filter(None, [str(e), run.detail]))
            return
        finally:
            self._record_positions(schedule.id, run.batch_id, positions)
        run.outcome, run.documents = SUBMITTED, report.documents

    @staticmethod
    def _documents(task: str, paths: list[str], options: LoadOptions, positions: dict[str, tuple[int, int]],
                   skip: int = 0) -> Iterator[LoadedDocument]:
        """The files' documents in order, the first ``skip`` left out, noting where each file's
        documents start in the batch (submit_batch numbers documents in the order it is handed them,
        after those already stored)."""
        position = 0
        for path in paths:
            first = position
            for doc in load_task_path(task, Path(path), options):
                position += 1
                if position > skip:
                    yield doc
            positions[path] = (first, position - first)

    def _record_positions(self, schedule_id: str, batch_id: str, positions: dict[str, tuple[int, int]]) -> None:
        with self.engine.begin() as conn:
            for path, (first, n) in positions.items():
                conn.execute(sa.update(InboxFile).where(col(InboxFile.schedule_id) == schedule_id,
                                                        col(InboxFile.batch_id) == batch_id,
                                                        col(InboxFile.path) == path)
                             .values(first_position=first, documents=n))

    # ------------------------------------------------------------------ recovery and finishing
    def recover_abandoned(self, schedule: Schedule) -> int:
        """Resume this schedule's runs whose process died (``producer.schedules.recovery``)."""
        return recovery.recover_abandoned(self, schedule)

    def resume(self, schedule: Schedule, run: ScheduleRun, why: str) -> None:
        """Finish an abandoned run where it stopped, under its own heartbeat (so no other beat takes
        it meanwhile): the documents it stored are kept, the rest of its files submitted into its batch."""
        with RunHeartbeat(self.redis, alive_key(run.id), self.settings.schedule_heartbeat_s):
            if not run.batch_id:
                run.outcome, run.detail = ERROR, f"abandoned: {why}; it had claimed no file"
            else:
                files = recovery.claimed_order(self.engine, schedule.id, run.batch_id)
                before = recovery.stored_documents(self.engine, run.batch_id)
                self._submit(schedule, run, [f.path for f in files], stored=before)
                outcome = run.outcome
                resumed = recovery.describe_resume(run, why, before, run.documents or before)
                run.detail = resumed if outcome == SUBMITTED else f"{resumed}; then {run.detail}"
            with self.engine.begin() as conn:
                conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id).values(
                    outcome=run.outcome, documents=run.documents, detail=run.detail))
        log.warning("schedule %s: run for %s %s", schedule.name, utc(run.due_at).isoformat(), run.detail)

    def finish(self, schedule: Schedule) -> int:
        """Outbox and move the files of this schedule's finished batches (``producer.schedules.outbox``)."""
        return finish_files(self.engine, schedule)
