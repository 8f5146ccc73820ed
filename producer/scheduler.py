"""Schedules: when a run is due, firing it (the producer's own submission, in this process), inbox
folders, and the Celery beat scheduler that drives them from the ``schedule`` table.

Firing a run means reading its sources where this process runs and submitting them as one batch
(``producer.submit.submit_batch``), so ``docqueue beat`` needs the documents' folders and the
database, never torch. Two beats may run side by side: each (schedule, due time) is claimed with a
Redis ``SET NX EX`` lock before anything happens, and the run's row is unique per (schedule, due
time), so a run is fired once even after the lock has expired.

A schedule remembers every file it took (path + content sha256, ``inbox_file``): a file is
processed once, a changed file counts as new. A file still being written (younger than the
schedule's settle time, or changing size/mtime while it is hashed) waits for a later run. Once a
run's batch has finished, a later tick writes each file's results to the outbox and moves the file
to the done or failed folder. A run whose process dies mid-run stops renewing its Redis heartbeat;
a later tick records it as abandoned and releases its files (``ScheduleRunner.recover_abandoned``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from celery import Celery, beat
from croniter import croniter
from redis import Redis, RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from docqueue.broker import BrokerUnavailableError, check_broker
from docqueue.db import insert_ignoring_duplicates
from docqueue.events import EventSink, emit_finished
from docqueue.models import InboxFile, Job, Schedule, ScheduleRun, utcnow
from docqueue.schema import JobStatus, new_id
from docqueue.secrets import mask_url
from docqueue.settings import Settings
from producer.batch_control import UNFINISHED, cancel_batch
from producer.loaders import LoadedDocument, LoadOptions, iter_paths, load_path
from producer.queries import BatchNotFoundError, iter_results
from producer.submit import PublishError, submit_batch

log = logging.getLogger("docqueue.beat")

CATCH_UP_POLICIES = ("none", "last", "all")
OVERLAP_POLICIES = ("skip", "allow")
#: Outcomes of one run (``schedule_run.outcome``).
RUNNING, SUBMITTED, SKIPPED, NOTHING_NEW, ERROR = "running", "submitted", "skipped", "nothing_new", "error"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``15m``, ``2s``, ``1h30m``, ``500ms`` or a bare number of seconds."""
    value = text.strip().lower().replace(" ", "")
    try:
        return float(value)
    except ValueError:
        pass
    if not value or _DURATION.sub("", value):
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 15m, 1h30m, 1d)")
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(value))


def format_duration(seconds: float) -> str:
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; docqueue stores UTC everywhere."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _utc(dt: datetime | None) -> datetime:
    out = aware(dt)
    assert out is not None
    return out


def describe(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron}" + ("" if schedule.timezone == "UTC" else f" ({schedule.timezone})")
    return f"every {format_duration(schedule.every_s or 0)}"


# ------------------------------------------------------------------------------------- due times
def next_due(schedule: Schedule, after: datetime) -> datetime:
    """The first due time strictly after ``after``. Interval schedules are anchored at their creation
    time, so every beat computes the very same due times (the lock and the run row key on them)."""
    if schedule.cron:
        local = after.astimezone(ZoneInfo(schedule.timezone))
        return _utc(croniter(schedule.cron, local).get_next(datetime))
    every = timedelta(seconds=schedule.every_s or 0)
    anchor = _utc(schedule.created_at)
    return anchor + ((after - anchor) // every + 1) * every


def due_between(schedule: Schedule, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The newest ``limit`` due times in ``(after, until]``, oldest first."""
    found: list[datetime] = []
    if schedule.cron:
        zone = ZoneInfo(schedule.timezone)
        itr = croniter(schedule.cron, (until + timedelta(seconds=1)).astimezone(zone))
        while len(found) < limit:
            due = _utc(itr.get_prev(datetime))
            if due <= after:
                break
            if due <= until:
                found.append(due)
        return found[::-1]
    every = timedelta(seconds=schedule.every_s or 0)
    anchor = _utc(schedule.created_at)
    last_k = (until - anchor) // every
    first_k = max((after - anchor) // every + 1, last_k - limit + 1, 1)
    return [anchor + k * every for k in range(first_k, last_k + 1)]


def plan_runs(policy: str, dues: list[datetime], now: datetime, grace_s: float) -> list[tuple[datetime, str]]:
    """Which of the due times to fire, each with its trigger (``schedule`` when on time, ``catch-up``
    when later than the grace).

    Several due times at once mean the beat was down (or busy) through some of them. ``none`` fires
    the newest only if it is still on time; ``last`` fires the newest whatever its lateness (a beat
    down at 02:00 runs once when back); ``all`` fires every one of them, oldest first.
    """
    def trigger(due: datetime) -> str:
        return "schedule" if (now - due).total_seconds() <= grace_s else "catch-up"

    if not dues:
        return []
    if policy == "all":
        return [(d, trigger(d)) for d in dues]
    newest = dues[-1]
    if policy == "none" and trigger(newest) != "schedule":
        return []
    return [(newest, trigger(newest))]


def lock_key(schedule_id: str, due: datetime) -> str:
    return f"docqueue:schedule-lock:{schedule_id}:{_utc(due).strftime('%Y%m%dT%H%M%S.%fZ')}"


#: A run's heartbeat lives this many renewal periods (``schedule_heartbeat_s``): a renewal or two may
#: come late without the run looking dead.
HEARTBEAT_LIFETIMES = 3


def heartbeat_lifetime(every: float) -> float:
    """Seconds a run's heartbeat, renewed every ``every`` seconds, lives after its last renewal."""
    return HEARTBEAT_LIFETIMES * every


def alive_key(run_id: str) -> str:
    """The heartbeat of a run in progress (renewed by its process, gone when the process is)."""
    return f"docqueue:schedule-run:{run_id}:alive"


def suspect_key(run_id: str) -> str:
    """When a beat first found a running run without heartbeat (so a second look can confirm it)."""
    return f"docqueue:schedule-run:{run_id}:suspect"


class Heartbeat:
    """Renews a run's ``alive_key`` every ``every`` seconds from a daemon thread while the run reads
    and submits (a big inbox file can take minutes between two points of the run's own code). A
    failed renewal is logged, not raised: the run goes on, and a missing heartbeat is only acted on
    when it is still missing at a second look (``ScheduleRunner.recover_abandoned``)."""

    def __init__(self, redis: Redis, key: str, every: float) -> None:
        self.redis, self.key, self.every = redis, key, every
        self.lifetime_ms = int(heartbeat_lifetime(every) * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="schedule-run-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            self.redis.set(self.key, "1", px=self.lifetime_ms)
        except RedisError as e:
            log.warning("schedule run heartbeat not renewed: %s", mask_url(str(e)))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._beat()

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(RedisError):  # else it expires on its own
            self.redis.delete(self.key)


# ------------------------------------------------------------------------------------ inbox files
@dataclass(frozen=True)
class Candidate:
    """A settled file a run may take."""

    path: str
    relpath: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.path}\x00{self.sha256}".encode()).hexdigest()


@dataclass
class Scan:
    files: list[Candidate]
    waiting: int = 0  # still being written: left for a later run
    missing: int = 0  # a source that does not exist (yet)


def load_options(schedule: Schedule) -> LoadOptions:
    o = schedule.load_options or {}
    return LoadOptions(include=tuple(o.get("include") or ()), exclude=tuple(o.get("exclude") or ()),
                       hidden=bool(o.get("hidden")), text_field=o.get("text_field") or "text",
                       id_field=o.get("id_field") or None, clean_text=bool(o.get("clean_text")))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def scan_sources(schedule: Schedule, now: datetime | None = None) -> Scan:
    """The files of the schedule's sources that have settled, in order, with their content hash.

    Settled: modified at least ``settle_s`` ago, and the same size and mtime after hashing as before
    (a writer still appending is caught even when it keeps mtime old). A file that cannot be opened
    is still taken, under a key of its size and mtime, so the loader records why (``unreadable``)."""
    now_ts = (now or utcnow()).timestamp()
    options = load_options(schedule)
    scan = Scan(files=[])
    for source in schedule.sources:
        root = Path(source)
        if not root.exists() and not any(c in source for c in "*?["):
            scan.missing += 1
            continue
        for path in iter_paths([source], options.include, options.exclude, options.hidden):
            try:
                before = path.stat()
            except OSError:
                continue  # vanished between listing and looking: not ours to report
            if now_ts - before.st_mtime < schedule.settle_s:
                scan.waiting += 1
                continue
            try:
                sha = _hash_file(path)
            except OSError:
                sha = hashlib.sha256(f"unreadable:{before.st_size}:{before.st_mtime_ns}".encode()).hexdigest()
            try:
                after = path.stat()
            except OSError:
                continue
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                scan.waiting += 1
                continue
            relpath = str(path.relative_to(root)) if root.is_dir() else path.name
            scan.files.append(Candidate(str(path), relpath, sha, before.st_size))
    return scan


def claim_files(engine: Engine, schedule_id: str, batch_id: str, files: list[Candidate]) -> list[Candidate]:
    """Record the files this run takes; those the schedule already took (same path and content) are
    left out. One insert that ignores duplicates, so two runs racing for a file cannot both take it."""
    claimed: set[str] = set()
    now = utcnow()
    with engine.begin() as conn:
        for start in range(0, len(files), 500):
            rows = [{"id": new_id(), "schedule_id": schedule_id, "file_key": f.key, "path": f.path,
                     "relpath": f.relpath, "sha256": f.sha256, "size": f.size, "batch_id": batch_id,
                     "state": "submitted", "created_at": now} for f in files[start:start + 500]]
            stmt = insert_ignoring_duplicates(conn, InboxFile, ["schedule_id", "file_key"]).values(rows).returning(
                col(InboxFile.file_key))
            claimed.update(conn.execute(stmt).scalars())
    return [f for f in files if f.key in claimed]


# ------------------------------------------------------------------------------------------- runs
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
        after = aware(schedule.cursor_at) or _utc(schedule.created_at)
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
        if not self.redis.set(lock_key(schedule.id, due), self.token, nx=True, ex=self.settings.schedule_lock_ttl_s):
            log.info("schedule %s: due %s is held by another beat", schedule.name, due.isoformat())
            return None
        run = ScheduleRun(id=new_id(), schedule_id=schedule.id, due_at=due, trigger=trigger, outcome=RUNNING)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(ScheduleRun).values(**run.model_dump()))
        except IntegrityError:  # fired before, by a beat whose lock has since expired
            log.info("schedule %s: due %s was fired already", schedule.name, due.isoformat())
            return None
        with Heartbeat(self.redis, alive_key(run.id), self.settings.schedule_heartbeat_s):
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

    def _run(self, schedule: Schedule, run: ScheduleRun) -> None:
        if schedule.overlap == "skip" and (busy := self._unfinished_previous(schedule, run.id)):
            run.outcome, run.detail = SKIPPED, f"batch {busy[0]} of the previous run has {busy[1]} unfinished jobs"
            return
        try:
            check_broker(self.broker_url, self.settings)
        except BrokerUnavailableError as e:
            run.outcome, run.detail = ERROR, f"{e}; nothing was read"
            return
        scan = scan_sources(schedule)
        batch_id = new_id()
        files = claim_files(self.engine, schedule.id, batch_id, scan.files)
        if files:  # before anything is stored: what a recovery of this run, should it die, undoes
            with self.engine.begin() as conn:
                conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id).values(batch_id=batch_id))
        notes = [f"{n} {what}" for n, what in ((scan.waiting, "file(s) still being written wait"),
                                              (scan.missing, "source(s) missing")) if n]
        run.detail = "; ".join(notes) or None
        if not files:
            run.outcome = NOTHING_NEW
            return
        positions: dict[str, tuple[int, int]] = {}
        options = load_options(schedule).resolved()
        try:
            report = submit_batch(settings=self.settings, engine=self.engine, app=self.app, task=schedule.task,
                                  documents=self._documents(files, options, positions), params=schedule.params,
                                  force=bool((schedule.load_options or {}).get("force")), batch_id=batch_id,
                                  schedule_id=schedule.id, chunk_size=self.settings.submit_chunk_size,
                                  webhook_url=schedule.webhook_url, webhook_documents=schedule.webhook_documents)
        except PublishError as e:
            run.batch_id, run.documents, run.outcome = batch_id, e.report.documents, ERROR
            run.detail = (f"broker failed after storing {e.report.documents} documents ({e.pending} not enqueued): "
                          f"{e.reason}; the reaper publishes them, or `docqueue retry {batch_id}`")
            return
        finally:
            self._record_positions(schedule.id, files, positions)
        run.outcome, run.batch_id, run.documents = SUBMITTED, report.batch_id, report.documents

    @staticmethod
    def _documents(files: list[Candidate], options: LoadOptions,
                   positions: dict[str, tuple[int, int]]) -> Iterator[LoadedDocument]:
        """The claimed files' documents in order, noting where each file's documents start in the batch
        (submit_batch numbers documents in the order it is handed them)."""
        position = 0
        for f in files:
            first = position
            for doc in load_path(Path(f.path), options):
                position += 1
                yield doc
            positions[f.key] = (first, position - first)

    def _record_positions(self, schedule_id: str, files: list[Candidate],
                          positions: dict[str, tuple[int, int]]) -> None:
        with self.engine.begin() as conn:
            for f in files:
                if f.key in positions:
                    first, n = positions[f.key]
                    conn.execute(sa.update(InboxFile).where(col(InboxFile.schedule_id) == schedule_id,
                                                            col(InboxFile.file_key) == f.key)
                                 .values(first_position=first, documents=n))

    # ------------------------------------------------------------------------- abandoned runs
    def recover_abandoned(self, schedule: Schedule) -> int:
        """Runs of this schedule left ``running`` by a process that died (killed, its machine lost):
        recorded as errors, their batch's unfinished jobs cancelled and their files released, so the
        next run takes those files again instead of leaving them claimed forever. How many.

        A run is abandoned when its heartbeat is missing at two looks at least its lifetime apart: a
        live run renews it within ``schedule_heartbeat_s``, so a Redis that restarted empty (and lost
        every heartbeat at once) makes no live run look dead."""
        lifetime = heartbeat_lifetime(self.settings.schedule_heartbeat_s)
        now = utcnow()
        with self.engine.connect() as conn:
            runs = [ScheduleRun.model_validate(r._mapping) for r in conn.execute(sa.select(ScheduleRun).where(
                col(ScheduleRun.schedule_id) == schedule.id, col(ScheduleRun.outcome) == RUNNING,
                col(ScheduleRun.fired_at) < now - timedelta(seconds=lifetime)))]
        recovered = 0
        for run in runs:
            if self.redis.exists(alive_key(run.id)):
                self.redis.delete(suspect_key(run.id))
                continue
            first_seen = self.redis.get(suspect_key(run.id))
            if first_seen is None:
                self.redis.set(suspect_key(run.id), str(now.timestamp()), ex=int(lifetime * 10) + 60)
                continue
            if now.timestamp() - float(first_seen) < lifetime:
                continue
            if self._abandon(schedule, run, lifetime):
                recovered += 1
        return recovered

    def _abandon(self, schedule: Schedule, run: ScheduleRun, lifetime: float) -> bool:
        detail = f"abandoned: its process stopped mid-run (no heartbeat for {lifetime:g}+ s)"
        with self.engine.begin() as conn:  # one beat wins the verdict; the others find it taken
            if not conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id,
                                                             col(ScheduleRun.outcome) == RUNNING)
                                .values(outcome=ERROR, detail=detail)).rowcount:
                return False
        cancelled = released = 0
        if run.batch_id:
            now = utcnow()
            with contextlib.suppress(BatchNotFoundError):  # it died before storing anything
                cancelled = cancel_batch(self.engine, run.batch_id, now=now,
                                         reason=f"cancelled: schedule run {run.id} was abandoned; its files are "
                                                "submitted again by the next run")
            if cancelled:
                emit_finished(EventSink(self.app, self.settings, redis=self.redis), self.engine, finished_at=now,
                              batch=run.batch_id)
            with self.engine.begin() as conn:
                # files whose documents it stored, and their positions, are the batch's: the ones it had
                # not finished storing (documents NULL) are let go, to be claimed again
                released = int(conn.execute(sa.delete(InboxFile).where(
                    col(InboxFile.schedule_id) == schedule.id, col(InboxFile.batch_id) == run.batch_id,
                    col(InboxFile.documents).is_(None))).rowcount)
        detail += (f"; batch {run.batch_id}: {cancelled} unfinished job(s) cancelled, {released} file(s) released "
                   "for the next run") if run.batch_id else "; it had claimed no file"
        with self.engine.begin() as conn:
            conn.execute(sa.update(ScheduleRun).where(col(ScheduleRun.id) == run.id).values(detail=detail))
        self.redis.delete(suspect_key(run.id))
        log.warning("schedule %s: run for %s %s", schedule.name, _utc(run.due_at).isoformat(), detail)
        return True

    # ------------------------------------------------------------------------- finished batches
    def finish(self, schedule: Schedule) -> int:
        """Outbox and move the files of this schedule's finished batches; how many files. Each file is
        claimed (submitted -> finishing) first, so two beats never handle the same file."""
        with self.engine.connect() as conn:
            # documents is set once the run has stored the file's documents: before that, a batch with
            # no jobs yet would look finished
            batches = list(conn.execute(sa.select(col(InboxFile.batch_id)).distinct().where(
                col(InboxFile.schedule_id) == schedule.id, col(InboxFile.state) == "submitted",
                col(InboxFile.documents).is_not(None))).scalars())
        handled = 0
        for batch in batches:
            with self.engine.connect() as conn:
                left = conn.execute(sa.select(sa.func.count()).where(
                    col(Job.batch_id) == batch, col(Job.status).in_(UNFINISHED))).scalar_one()
                if left:
                    continue
                files = [InboxFile.model_validate(r._mapping) for r in conn.execute(
                    sa.select(InboxFile).where(col(InboxFile.batch_id) == batch,
                                               col(InboxFile.schedule_id) == schedule.id,
                                               col(InboxFile.state) == "submitted",
                                               col(InboxFile.documents).is_not(None)))]
            for f in files:
                with self.engine.begin() as conn:
                    mine = conn.execute(sa.update(InboxFile).where(col(InboxFile.id) == f.id,
                                                                   col(InboxFile.state) == "submitted")
                                        .values(state="finishing")).rowcount
                if mine:
                    self._finish_file(schedule, f)
                    handled += 1
        return handled

    def _finish_file(self, schedule: Schedule, f: InboxFile) -> None:
        notes: list[str] = []
        first, n = f.first_position or 0, f.documents or 0
        rows = list(iter_results(self.engine, f.batch_id, positions=(first, first + n)))
        state = "done" if all(r["status"] == JobStatus.succeeded.value for r in rows) else "failed"
        if schedule.outbox:
            try:
                self._write_outbox(Path(schedule.outbox), schedule, f, rows, state)
            except OSError as e:
                notes.append(f"outbox not written: {e}")
        target = schedule.move_done if state == "done" else schedule.move_failed
        if target:
            try:
                notes.append(f"moved to {_move(Path(f.path), Path(target), f.relpath)}")
            except OSError as e:
                notes.append(f"not moved: {e}")
        with self.engine.begin() as conn:
            conn.execute(sa.update(InboxFile).where(col(InboxFile.id) == f.id).values(
                state=state, detail="; ".join(notes) or None, finished_at=utcnow()))

    @staticmethod
    def _write_outbox(outbox: Path, schedule: Schedule, f: InboxFile, rows: list[dict[str, Any]],
                      state: str) -> None:
        """``OUTBOX/<path under the inbox>.json``: the file's documents' results, written whole (a temp
        file renamed), so a reader of the outbox never sees half of one."""
        target = outbox / f"{f.relpath}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {"source": f.path, "file": f.relpath, "sha256": f.sha256, "schedule": schedule.name,
                "batch": f.batch_id, "status": "succeeded" if state == "done" else "failed", "documents": rows}
        tmp = target.with_name(f".{target.name}.{new_id()}.tmp")
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, target)


def _move(path: Path, folder: Path, relpath: str) -> Path:
    """Move into ``folder`` under the same relative path; an existing name gets a numbered suffix."""
    target = folder / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        target = target.with_name(f"{Path(relpath).stem}.{n}{Path(relpath).suffix}")
        n += 1
    shutil.move(str(path), str(target))
    return target


# ------------------------------------------------------------------------------- celery beat glue
class DatabaseScheduler(beat.Scheduler):
    """Celery beat's scheduler with the ``schedule`` table as its schedule: every tick reads the table
    (a schedule added, paused or removed is seen at the next tick, within ``max_interval``) and fires
    in this process what is due. No Celery task is sent for a run: firing is the submission itself."""

    def __init__(self, *args: Any, runner: ScheduleRunner, only: str | None = None, **kwargs: Any) -> None:
        self.runner, self.only = runner, only
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """Nothing to load: the table is read on every tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return self.runner.tick(only=self.only, max_interval=float(self.max_interval))
        except Exception:  # the database away for a moment: beat keeps going and looks again
            log.exception("beat: cannot read the schedules; trying again in %ss", self.max_interval)
            return float(self.max_interval)

    def sync(self) -> None:
        """Nothing to write: each run is committed as it happens."""

    @property
    def info(self) -> str:
        return "    . db -> schedule table" + (f" (schedule {self.only} only)" if self.only else "")
