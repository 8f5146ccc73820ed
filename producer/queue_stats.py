"""What is queued, who works on it, and how far batches are: the data behind ``docqueue top`` and
``docqueue metrics serve``. Read-only, and cheap enough to run every few seconds.

Queue depth is not ``LLEN <queue>``: kombu's Redis transport keeps a message of priority ``p > 0``
on a separate list, ``<queue>\\x06\\x16<p>`` (its ``sep`` and ``priority_steps``), and a message a
worker has taken but not acknowledged sits in the ``unacked`` hash (indexed by time in the
``unacked_index`` zset) until it is acked or restored after the visibility timeout. A plain LLEN
would miss both, and an autoscaler reading it would scale a busy queue down to zero.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue import presence
from docqueue.envelope import identify
from docqueue.models import Batch, Job
from docqueue.names import TASK_TYPES, queue_name
from docqueue.schema import UNFINISHED, JobStatus

#: kombu's separator between a queue's name and its priority (``kombu.transport.redis.Channel.sep``).
PRIORITY_SEP: str = RedisChannel.sep
UNACKED_KEY: str = RedisChannel.unacked_key
UNACKED_INDEX_KEY: str = RedisChannel.unacked_index_key

_DONE = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)

#: Returns the last bytes of every unacked entry (each is JSON ``[message, exchange, routing_key]``):
#: enough to read the routing key without shipping whole messages (few-shot examples make them big).
_UNACKED_TAILS = """
local out = {}
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  for i = 2, #page[2], 2 do
    out[#out + 1] = string.sub(page[2][i], -512)
  end
until cursor == "0"
return out
"""
_TAIL = re.compile(r',\s*("(?:[^"\\]|\\.)*")\s*,\s*("(?:[^"\\]|\\.)*")\s*\]\s*$')


def priority_lists(queue: str) -> list[str]:
    """Every Redis list kombu may hold ``queue``'s ready messages in, plain one first."""
    return [queue if p == 0 else f"{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


def unacked_routing_key(tail: bytes | str) -> str | None:
    """The routing key (the queue, for docqueue's direct exchanges) of one ``unacked`` entry's tail."""
    text = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail
    m = _TAIL.search(text)
    if not m:
        return None
    try:
        return str(json.loads(m[2]))
    except ValueError:
        return None


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int  # waiting in the queue's lists (every priority)
    unacked: int  # delivered to a worker, not yet acknowledged

    def as_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "ready": self.ready, "unacked": self.unacked}


def queue_depths(client: Any, queues: list[str] | None = None) -> list[QueueDepth]:
    """Ready and unacked messages per docqueue queue: one pipelined round of LLENs plus one script
    over the unacked hash (bounded by what workers hold: prefetch x processes, plus gathered ones)."""
    names = queues or [queue_name(t) for t in TASK_TYPES]
    pipe = client.pipeline(transaction=False)
    for q in names:
        for key in priority_lists(q):
            pipe.llen(key)
    lengths = pipe.execute()
    per = len(PRIORITY_STEPS)
    unacked: dict[str, int] = {}
    for tail in client.eval(_UNACKED_TAILS, 1, UNACKED_KEY):
        rk = unacked_routing_key(tail)
        if rk is not None:
            unacked[rk] = unacked.get(rk, 0) + 1
    return [QueueDepth(q, int(sum(lengths[i * per : (i + 1) * per])), unacked.get(q, 0))
            for i, q in enumerate(names)]


# ------------------------------------------------------------------------------------ batches
def batch_states(engine: Engine) -> dict[str, int]:
    """Batches per state (queued, running, finished, cancelled, as ``docqueue batches`` derives them).

    Cheap on a big database: only batches with unfinished jobs are looked at job by job (through the
    (batch_id, status) index); finished and cancelled ones are counted from the batch table and the
    cancelled jobs' index.
    """
    with engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(Batch)).scalar_one())
        open_ids = set(conn.execute(
            sa.select(col(Job.batch_id)).where(col(Job.status).in_(UNFINISHED)).distinct()).scalars())
        started: set[str] = set()
        if open_ids:
            started = set(conn.execute(
                sa.select(col(Job.batch_id)).where(
                    col(Job.batch_id).in_(open_ids),
                    col(Job.status).in_((JobStatus.running.value, JobStatus.succeeded.value))).distinct()).scalars())
        cancelled = set(conn.execute(
            sa.select(col(Job.batch_id)).where(col(Job.status) == JobStatus.cancelled.value).distinct()).scalars())
    cancelled -= open_ids
    running = len(started)
    queued = len(open_ids) - running
    return {"queued": queued, "running": running, "cancelled": len(cancelled),
            "finished": max(0, total - len(open_ids) - len(cancelled))}


@dataclass
class BatchProgress:
    batch: str
    task: str
    created_at: datetime
    total: int
    done: int  # succeeded + failed + cancelled
    failed: int
    running: int
    rate: float | None = None  # documents per second, None until there is something to measure
    eta_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "task": self.task, "created_at": self.created_at.isoformat(),
                "total": self.total, "done": self.done, "failed": self.failed, "running": self.running,
                "rate": None if self.rate is None else round(self.rate, 3),
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1)}


def batches_in_progress(engine: Engine, limit: int = 20) -> list[BatchProgress]:
    """Batches with unfinished jobs, newest first, with their rate so far (documents finished per
    second since the batch's first job started) and the ETA at that rate."""
    with engine.connect() as conn:
        open_ids = list(conn.execute(
            sa.select(col(Job.batch_id)).where(col(Job.status).in_(UNFINISHED)).distinct()).scalars())
        if not open_ids:
            return []
        heads = conn.execute(
            sa.select(col(Batch.id), col(Batch.task), col(Batch.created_at)).where(col(Batch.id).in_(open_ids))
            .order_by(col(Batch.created_at).desc()).limit(limit)).all()
        ids = [h[0] for h in heads]
        counts: dict[str, dict[str, int]] = {i: {} for i in ids}
        for bid, status, n in conn.execute(
                sa.select(col(Job.batch_id), col(Job.status), sa.func.count())
                .where(col(Job.batch_id).in_(ids)).group_by(col(Job.batch_id), col(Job.status))):
            counts[bid][status] = n
        spans = {bid: (first, last) for bid, first, last in conn.execute(
            sa.select(col(Job.batch_id), sa.func.min(col(Job.started_at)), sa.func.max(col(Job.finished_at)))
            .where(col(Job.batch_id).in_(ids), col(Job.started_at).is_not(None))
            .group_by(col(Job.batch_id)))}
    out = []
    now = datetime.now(timezone.utc)
    for bid, task, created in heads:
        c = counts[bid]
        done = sum(c.get(s, 0) for s in _DONE)
        total = sum(c.values())
        progress = BatchProgress(bid, task, created or now, total, done, c.get(JobStatus.failed.value, 0),
                                 c.get(JobStatus.running.value, 0))
        first, _last = spans.get(bid, (None, None))
        ran = c.get(JobStatus.succeeded.value, 0) + progress.failed
        if first is not None and ran:
            elapsed = max((now - first).total_seconds(), 1e-3)
            progress.rate = ran / elapsed
            progress.eta_s = (total - done) / progress.rate
        out.append(progress)
    return out


@dataclass(frozen=True)
class Failure:
    job: str
    batch: str
    task: str
    kind: str
    message: str
    finished_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job, "batch": self.batch, "task": self.task, "kind": self.kind,
                "message": self.message, "finished_at": self.finished_at.isoformat() if self.finished_at else None}


def recent_failures(engine: Engine, limit: int = 10, within: timedelta = timedelta(hours=24)) -> list[Failure]:
    """The last ``limit`` failed jobs of the past ``within``, newest first, with their error kind."""
    since = datetime.now(timezone.utc) - within
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(Job.id), col(Job.batch_id), col(Job.task), col(Job.error_kind), col(Job.error_message),
                      col(Job.finished_at))
            .where(col(Job.status) == JobStatus.failed.value, col(Job.finished_at) >= since)
            .order_by(col(Job.finished_at).desc()).limit(limit)).all()
    return [Failure(j, b, t, k or "", (m or "")[:300], f) for j, b, t, k, m, f in rows]


# ------------------------------------------------------------------------------------ workers
@dataclass
class WorkerView:
    node: str
    queues: list[str]
    device: str
    processes: int
    resident: list[str] = field(default_factory=list)
    in_flight: int = 0
    busy_processes: int = 0

    @property
    def host(self) -> str:
        return self.node.split("@", 1)[1] if "@" in self.node else self.node

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "host": self.host, "queues": self.queues, "device": self.device,
                "processes": self.processes, "resident": self.resident, "in_flight": self.in_flight,
                "busy_processes": self.busy_processes}


def workers(client: Any) -> list[WorkerView]:
    """Live workers (``docqueue.presence``) with what their processes hold and run."""
    procs = presence.live_processes(client)
    out = []
    for w in sorted(presence.live_workers(client), key=lambda w: w.node):
        if not w.queues:  # the short-lived record of a worker that refused everything and exited
            continue
        mine = [p for p in procs if p.node == w.node]
        resident = sorted({m for p in mine for m in p.resident})
        out.append(WorkerView(w.node, w.queues, w.device, w.processes, resident,
                              sum(p.in_flight for p in mine), sum(1 for p in mine if p.in_flight)))
    return out


# ----------------------------------------------------------------------------------- snapshot
#: Version of the ``docqueue top --once --json`` object; bumped when a field changes meaning.
SNAPSHOT_VERSION = 1


#: Ready messages read per queue (every priority list together) to find those of finished batches.
STALE_SCAN_LIMIT = 2000


def stale_ready(client: Any, engine: Engine, queues: list[str]) -> dict[str, int]:
    """Per queue, ready messages whose batch has no unfinished job left (cancelled, or finished
    another way): workers drop them unrun, so they are not work waiting. Only the first
    :data:`STALE_SCAN_LIMIT` messages of a queue are read; a batch this database does not know is
    not counted (another database's, perhaps)."""
    seen: dict[str, list[str]] = {}
    for q in queues:
        items: list[Any] = []
        for key in priority_lists(q):
            room = STALE_SCAN_LIMIT - len(items)
            if room <= 0:
                break
            items += client.lrange(key, 0, room - 1)
        seen[q] = [b for b in (identify(item).batch for item in items) if b]
    names = {b for found in seen.values() for b in found}
    if not names:
        return {}
    with engine.connect() as conn:
        known = set(conn.execute(sa.select(col(Batch.id)).where(col(Batch.id).in_(names))).scalars())
        open_ = set(conn.execute(sa.select(col(Job.batch_id)).where(
            col(Job.batch_id).in_(names), col(Job.status).in_(UNFINISHED)).distinct()).scalars())
    return {q: sum(1 for b in found if b in known and b not in open_) for q, found in seen.items()}


def _queues_view(client: Any, engine: Engine) -> list[dict[str, Any]]:
    """Queue depths for ``top``: ``ready`` without the messages of finished (cancelled) batches,
    which are counted apart as ``stale``."""
    depths = queue_depths(client)
    stale = stale_ready(client, engine, [d.queue for d in depths if d.ready])
    return [{**d.as_json(), "ready": d.ready - stale.get(d.queue, 0), "stale": stale.get(d.queue, 0)}
            for d in depths]


def snapshot(client: Any, engine: Engine, failures: int = 10, batches: int = 20) -> dict[str, Any]:
    """Everything ``docqueue top`` shows, as one JSON-ready object (schema in docs/operations/metrics.md)."""
    return {
        "version": SNAPSHOT_VERSION,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "queues": _queues_view(client, engine),
        "workers": [w.as_json() for w in workers(client)],
        "batches": [b.as_json() for b in batches_in_progress(engine, limit=batches)],
        "batch_states": batch_states(engine),
        "failures": [f.as_json() for f in recent_failures(engine, limit=failures)],
    }
