"""Catch-up (misfire) policies and the two guards against a double fire, on real database rows and
real Redis locks, with the clock given: what a beat that was down does when it comes back."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import col

from docqueue import db
from docqueue.models import Batch, Document, InboxFile, Job, Schedule, ScheduleRun
from docqueue.queue import make_celery
from docqueue.schema import new_id
from docqueue.settings import get_settings
from producer.batch_control import purge_batches, purge_schedule_runs
from producer.schedules.locks import RunHeartbeat as Heartbeat
from producer.schedules.locks import alive_key, heartbeat_lifetime, lock_key, suspect_key
from producer.schedules.runner import ScheduleRunner
from producer.schedules.timing import aware, due_between, next_due, parse_duration

T0 = datetime(2026, 11, 30, 0, 0, 0, 500_000, tzinfo=timezone.utc)


def _runner(database_url: str, redis_url: str, **overrides: object) -> ScheduleRunner:
    settings = get_settings(database_url=database_url, redis_url=redis_url, schedule_misfire_grace_s=5,
                            **overrides)
    db.upgrade(database_url)
    engine = db.get_engine(database_url)
    app = make_celery(settings, redis_url)
    return ScheduleRunner(settings, engine, app, redis_url, redis.Redis.from_url(redis_url))


def _schedule(runner: ScheduleRunner, root: Path, name: str, **fields: object) -> Schedule:
    """A schedule over an empty folder of its own (its runs find nothing new: no worker needed)."""
    folder = root / f"inbox-{name}"
    folder.mkdir(exist_ok=True)
    s = Schedule(id=new_id(), name=name, task="classify", params={"labels": ["a", "b"]}, sources=[str(folder)],
                 load_options={}, settle_s=0, created_at=T0, **fields)
    with runner.engine.begin() as conn:
        conn.execute(sa.insert(Schedule).values(**s.model_dump()))
    return s


def _runs(runner: ScheduleRunner, s: Schedule) -> list[tuple[datetime, str, str]]:
    with runner.engine.connect() as conn:
        rows = conn.execute(sa.select(col(ScheduleRun.due_at), col(ScheduleRun.trigger), col(ScheduleRun.outcome))
                            .where(col(ScheduleRun.schedule_id) == s.id).order_by(col(ScheduleRun.due_at))).all()
    return [(aware(d), t, o) for d, t, o in rows]  # type: ignore[misc]


def _cursor(runner: ScheduleRunner, s: Schedule) -> datetime | None:
    with runner.engine.connect() as conn:
        return aware(conn.execute(sa.select(col(Schedule.cursor_at)).where(col(Schedule.id) == s.id)).scalar_one())


def test_catch_up_policies_after_a_beat_was_down(database_url: str, clean_redis: str, tmp_path: Path) -> None:
    """Every minute since T0; the beat comes back 10 min 30 s later (10 due times missed, the newest
    30 s late, beyond the 5 s grace)."""
    runner = _runner(database_url, clean_redis)
    now = T0 + timedelta(minutes=10, seconds=30)
    dues = [T0 + timedelta(minutes=k) for k in range(1, 11)]
    by_policy = {p: _schedule(runner, tmp_path, f"every-{p}", every_s=60.0, catch_up=p)
                 for p in ("none", "last", "all")}
    for s in by_policy.values():
        runner.tick_one(s, now)
    assert _runs(runner, by_policy["none"]) == []
    assert _runs(runner, by_policy["last"]) == [(dues[-1], "catch-up", "nothing_new")]
    assert _runs(runner, by_policy["all"]) == [(d, "catch-up", "nothing_new") for d in dues]
    for s in by_policy.values():  # every policy moves past all ten: the next tick fires nothing again
        assert _cursor(runner, s) == dues[-1]
        s.cursor_at = dues[-1]
        assert runner.tick_one(s, now + timedelta(seconds=1)) == []
    # on time (within the grace), every policy fires, and says it was on schedule
    on_time = dues[-1] + timedelta(minutes=1, seconds=2)
    for policy, s in by_policy.items():
        runs = runner.tick_one(s, on_time)
        assert [(r.due_at, r.trigger) for r in runs] == [(dues[-1] + timedelta(minutes=1), "schedule")], policy


def test_catch_up_all_is_capped_to_the_newest(database_url: str, clean_redis: str, tmp_path: Path) -> None:
    runner = _runner(database_url, clean_redis, schedule_catch_up_max=3)
    s = _schedule(runner, tmp_path, "capped", every_s=60.0, catch_up="all")
    runner.tick_one(s, T0 + timedelta(minutes=10, seconds=30))
    assert [d for d, _, _ in _runs(runner, s)] == [T0 + timedelta(minutes=k) for k in (8, 9, 10)]


def test_cron_last_runs_once_for_the_missed_0200(database_url: str, clean_redis: str, tmp_path: Path) -> None:
    """'0 2 * * *' in Berlin, beat down from before 02:00 until 05:00 local on 3 December."""
    runner = _runner(database_url, clean_redis)
    s = _schedule(runner, tmp_path, "nightly", cron="0 2 * * *", timezone="Europe/Berlin", catch_up="last",
                  cursor_at=datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc))
    back = datetime(2026, 12, 3, 4, 0, tzinfo=timezone.utc)  # 05:00 in Berlin
    assert due_between(s, aware(s.cursor_at), back, 10) == [datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)]
    runner.tick_one(s, back)
    assert _runs(runner, s) == [(datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc), "catch-up", "nothing_new")]
    assert next_due(s, back) == datetime(2026, 12, 4, 1, 0, tzinfo=timezone.utc)
    assert _cursor(runner, s) == datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)


def test_a_due_time_fires_once_across_beats(database_url: str, clean_redis: str, tmp_path: Path) -> None:
    """Two runners (two beats) on one due time: the Redis lock stops the second; with the lock gone
    (expired), the run's unique row still does."""
    first, second = _runner(database_url, clean_redis), _runner(database_url, clean_redis)
    s = _schedule(first, tmp_path, "twice", every_s=60.0)
    due = T0 + timedelta(minutes=1)
    assert first.fire(s, due, "schedule") is not None
    assert second.fire(s, due, "schedule") is None
    assert first.redis.ttl(lock_key(s.id, due)) > 0  # a lock with an expiry, as RedBeat's
    first.redis.delete(lock_key(s.id, due))
    assert second.fire(s, due, "schedule") is None
    assert len(_runs(first, s)) == 1


def test_durations() -> None:
    assert parse_duration("15m") == 900 and parse_duration("1h30m") == 5400 and parse_duration("2s") == 2
    assert parse_duration("500ms") == 0.5 and parse_duration("90") == 90 and parse_duration("1d") == 86400
    for bad in ("", "15 minutes", "m", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_lost_heartbeat_of_a_live_run_is_not_taken_for_a_dead_run(database_url: str, clean_redis: str,
                                                                     tmp_path: Path) -> None:
    """A Redis that restarts empty loses the heartbeat of every run in progress at once: a live run
    renews it before the second look, so it is left alone; once its process is gone for real (no
    renewal), the second look records it as abandoned."""
    every = 1.0  # the first look comes well within one renewal period, however slow the machine
    runner = _runner(database_url, clean_redis, schedule_heartbeat_s=every)
    lifetime = heartbeat_lifetime(every)
    s = _schedule(runner, tmp_path, "hb")
    fired = datetime.now(timezone.utc) - timedelta(minutes=1)
    run = ScheduleRun(id=new_id(), schedule_id=s.id, due_at=T0, fired_at=fired, trigger="manual", outcome="running")
    with runner.engine.begin() as conn:
        conn.execute(sa.insert(ScheduleRun).values(**run.model_dump()))
    with Heartbeat(runner.redis, alive_key(run.id), every):
        runner.redis.delete(alive_key(run.id))  # the restart
        assert runner.recover_abandoned(s) == 0  # first look: suspect
        assert runner.redis.exists(suspect_key(run.id))
        time.sleep(lifetime + 0.3)  # the live run has renewed its heartbeat meanwhile
        assert runner.recover_abandoned(s) == 0
        assert not runner.redis.exists(suspect_key(run.id))  # cleared: seen alive
        assert _runs(runner, s) == [(T0, "manual", "running")]
    # the process is gone now (no renewals, key deleted)
    assert runner.recover_abandoned(s) == 0  # a fresh first look
    time.sleep(lifetime + 0.3)
    assert runner.recover_abandoned(s) == 1
    assert runner.recover_abandoned(s) == 0  # once
    assert _runs(runner, s) == [(T0, "manual", "error")]
    with runner.engine.connect() as conn:
        detail = conn.execute(sa.select(col(ScheduleRun.detail)).where(col(ScheduleRun.id) == run.id)).scalar_one()
    assert detail.startswith("abandoned: its process stopped mid-run") and "claimed no file" in detail


def test_purge_keeps_what_a_schedule_still_needs_and_drops_old_run_records(database_url: str, clean_redis: str,
                                                                            tmp_path: Path) -> None:
    """Retention (`docqueue purge`) on a schedule's rows: a finished batch whose inbox file is not yet
    finished stays (its outbox is written from its results: without them the file would be moved as
    done with no documents); old run records go, but not a running one, not the newest, and not one
    whose batch stays."""
    runner = _runner(database_url, clean_redis)
    s = _schedule(runner, tmp_path, "retention")
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=40)

    def batch(file_state: str) -> str:
        b, d = new_id(), new_id()
        with runner.engine.begin() as conn:
            conn.execute(sa.insert(Batch).values(id=b, task="classify", params={}, created_at=old, schedule_id=s.id))
            conn.execute(sa.insert(Document).values(id=d, batch_id=b, source="x.txt", text="x", meta={},
                                                    created_at=old))
            conn.execute(sa.insert(Job).values(id=new_id(), batch_id=b, document_id=d, task="classify",
                                               status="succeeded", created_at=old))
            conn.execute(sa.insert(InboxFile).values(id=new_id(), schedule_id=s.id, file_key=new_id(), path="x.txt",
                                                     relpath="x.txt", sha256="0" * 64, batch_id=b, first_position=0,
                                                     documents=1, state=file_state, created_at=old))
        return b

    finished, settling = batch("done"), batch("submitted")
    runs = {"idle": (None, "nothing_new", 0), "finished": (finished, "submitted", 1),
            "settling": (settling, "submitted", 2), "running": (None, "running", 3), "newest": (None, "skipped", 4)}
    ids = {}
    with runner.engine.begin() as conn:
        for name, (b, outcome, k) in runs.items():
            ids[name] = new_id()
            at = old + timedelta(minutes=k)
            conn.execute(sa.insert(ScheduleRun).values(id=ids[name], schedule_id=s.id, due_at=at, fired_at=at,
                                                       trigger="schedule", outcome=outcome, batch_id=b, documents=0))
    before = now - timedelta(days=30)
    assert purge_batches(runner.engine, before=before, dry_run=True) == [finished]
    assert purge_schedule_runs(runner.engine, before=before, dry_run=True) == 2  # counts the batch it would delete
    assert purge_batches(runner.engine, before=before) == [finished]
    assert purge_schedule_runs(runner.engine, before=before) == 2
    with runner.engine.connect() as conn:
        left = set(conn.execute(sa.select(col(ScheduleRun.id)).where(col(ScheduleRun.schedule_id) == s.id)).scalars())
        batches = set(conn.execute(sa.select(col(Batch.id))).scalars())
    assert left == {ids["settling"], ids["running"], ids["newest"]}
    assert settling in batches and finished not in batches
    assert purge_schedule_runs(runner.engine, before=before) == 0
