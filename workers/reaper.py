"""The reaper: jobs whose worker died are put back on the queue in minutes, not hours.

A worker SIGKILLed with its whole process tree cannot reject its message, so kombu returns it only
after the Redis visibility timeout (300 s by default; Celery's own default, tied to the longest
task, was an hour), and a message handed back that way finds its jobs claimed by the dead worker
until their heartbeat is stale. Every job a worker runs carries a
heartbeat (``workers.pipeline.JobHeartbeat``); a ``running`` job whose heartbeat is older than
``DOCQUEUE_HEARTBEAT_TIMEOUT_S`` lost its worker, so the reaper sets it back to ``queued`` and
publishes a new message for it. A long job that is still running keeps its heartbeat fresh and is
never touched. Jobs ``queued`` whose message is nowhere on the broker (``workers.lost_jobs``) are
published again. Jobs left ``pending`` for ``DOCQUEUE_OUTBOX_GRACE_S`` (a submit that stored them
but could not publish, see ``producer.submit``) are published the same way. The message that comes
back later from the visibility timeout finds the job finished (or running elsewhere) and does
nothing.

One reaper runs at a time across all workers: each worker's main process tries every
``DOCQUEUE_REAPER_INTERVAL_S`` to take a Redis lock (``SET NX EX``, as RedBeat elects its leader);
the one that gets it does the round.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Any

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Batch, Job, utcnow
from docqueue.names import queue_name, task_name
from docqueue.schema import JobStatus, TaskMessage
from docqueue.settings import Settings
from workers import lost_jobs

log = logging.getLogger(__name__)

LOCK_KEY = "docqueue:reaper-lock"
#: Jobs looked at per round; a bigger backlog is worked off over the next rounds.
ROUND_LIMIT = 20_000


@dataclass
class ReapReport:
    requeued: int = 0
    messages: int = 0
    lost: int = 0  # queued jobs whose message was nowhere on the broker, published again


def reap_once(db: Engine, app: Celery, settings: Settings, seen_missing: set[str] | None = None) -> ReapReport:
    """Requeue the running jobs whose heartbeat stopped, and publish messages for them; with
    ``seen_missing`` (the reaper's memory between rounds, updated in place), also publish again the
    queued jobs whose message is gone (``workers.lost_jobs``)."""
    report = ReapReport()
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_s)
    stale = sa.or_(
        sa.and_(col(Job.status) == JobStatus.running.value,
                sa.or_(col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < cutoff)),
        # the outbox: stored by a submit whose publish never got through (broker down, submit killed)
        sa.and_(col(Job.status) == JobStatus.pending.value,
                col(Job.created_at) < now - timedelta(seconds=settings.outbox_grace_s)))
    with db.begin() as conn:
        rows = conn.execute(sa.select(col(Job.id), col(Job.batch_id), col(Job.task)).where(stale)
                            .limit(ROUND_LIMIT).with_for_update(skip_locked=True)).all()
        if rows:
            # the same condition again: a job a worker claimed meanwhile is left to it
            report.requeued = int(conn.execute(
                sa.update(Job).where(col(Job.id).in_([r[0] for r in rows]), stale)
                .values(status=JobStatus.queued.value, worker=None)).rowcount)
    if rows:
        report.messages += _publish(db, app, settings, lost_jobs.group((str(a), str(b), str(c)) for a, b, c in rows))
        log.warning("reaper: requeued %d job(s) whose worker stopped sending heartbeats or whose submit never "
                    "published them, in %d message(s)", report.requeued, report.messages)
    if seen_missing is not None and settings.queued_lost_after_s:
        with app.connection_for_write() as conn:
            lost, missing = lost_jobs.find_lost(db, conn.default_channel.client, settings.queued_lost_after_s,
                                                seen_missing)
        seen_missing.clear()
        seen_missing.update(missing)
        if lost:
            report.lost = len(lost)
            sent = _publish(db, app, settings, lost_jobs.group(lost))
            report.messages += sent
            log.warning("reaper: %d queued job(s) had no message on the queue nor in a worker's hands (lost by "
                        "Redis); published them again in %d message(s)", report.lost, sent)
    return report


def _publish(db: Engine, app: Celery, settings: Settings, groups: dict[tuple[str, str], list[str]]) -> int:
    """One message per ``batch_max_docs`` jobs of each (batch, task); returns how many were sent."""
    with db.connect() as conn:
        params: dict[str, Any] = dict(conn.execute(sa.select(col(Batch.id), col(Batch.params))
                                      .where(col(Batch.id).in_({b for b, _ in groups}))).all())
    sent = 0
    with app.producer_or_acquire() as producer:
        for (batch_id, task), ids in groups.items():
            it = iter(ids)
            while chunk := list(islice(it, settings.batch_max_docs)):
                message = TaskMessage(batch=batch_id, params=params.get(batch_id) or {}, jobs=tuple(chunk))
                app.send_task(task_name(task), kwargs=message.model_dump(mode="json"), queue=queue_name(task),
                              producer=producer, argsrepr="()",
                              kwargsrepr=f"<{len(chunk)} requeued jobs of batch {batch_id}>")
                sent += 1
    return sent


class Reaper(threading.Thread):
    """Runs :func:`reap_once` every interval in the worker's main process, when it holds the lock."""

    def __init__(self, db: Engine, app: Celery, settings: Settings) -> None:
        super().__init__(name="docqueue-reaper", daemon=True)
        self.db, self.app, self.settings = db, app, settings
        self.stopped = threading.Event()
        self.seen_missing: set[str] = set()  # queued jobs whose message was nowhere last round

    def _lead(self, client: Any) -> bool:
        ttl = max(1, int(self.settings.reaper_interval_s))
        return bool(client.set(LOCK_KEY, "1", nx=True, ex=ttl))

    def run(self) -> None:
        while not self.stopped.wait(self.settings.reaper_interval_s):
            try:
                with self.app.connection_for_write() as conn:
                    if not self._lead(conn.default_channel.client):
                        continue
                reap_once(self.db, self.app, self.settings, self.seen_missing)
            except Exception:
                log.warning("reaper round failed; trying again in %.0f s", self.settings.reaper_interval_s,
                            exc_info=True)
