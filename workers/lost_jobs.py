"""Queued jobs whose message is gone: found by the reaper, published again.

Why: the reaper used to look only at ``running`` jobs (heartbeat stopped) and ``pending`` ones (the
outbox). A message can also vanish while its jobs are ``queued``: Redis at ``maxmemory`` refused
kombu's ``unacked`` record right after BRPOP had removed the item (the worker crashed, the item was
in neither place; ``docqueue.transport`` now puts it back, but a worker killed while it waits loses
it), a Redis without persistence restarted, a failover dropped the last writes. Those jobs stayed
``queued`` for ever.

How a message is known to be gone: a job ``queued`` for longer than ``DOCQUEUE_QUEUED_LOST_AFTER_S``
is a suspect; the reaper reads every item of its task's queue lists (all priorities, oldest first,
stopping once every suspect is found) and kombu's ``unacked`` hash (messages a worker holds), and
takes the job ids each message stands for. A suspect named by none, in two rounds in a row (the
BRPOP-to-``unacked`` window is microseconds; rounds are ``DOCQUEUE_REAPER_INTERVAL_S`` apart), is
lost. A batch with dead letters is left alone: its jobs wait for ``docqueue dlq replay``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue import deadletter
from docqueue.models import Job, utcnow
from docqueue.names import queue_name
from docqueue.schema import JobStatus, derived_id

#: kombu's Redis transport: priority lists are ``<queue><SEP><step>`` (step 0 is the plain list).
SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"
#: Suspects looked at per round, and list items read per LRANGE.
SUSPECT_LIMIT = 20_000
PAGE = 1000

RedisClient = Any


def queue_lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{SEP}{step}" for step in PRIORITY_STEPS]


def jobs_of_item(item: bytes | str | dict[str, Any], task: str) -> set[str]:
    """The job ids one raw queue item (or decoded envelope) stands for; empty where it cannot be read."""
    try:
        envelope = item if isinstance(item, dict) else json.loads(item)
        body = envelope["body"]
        if str(envelope.get("properties", {}).get("body_encoding", "")).lower() == "base64":
            body = base64.b64decode(body)
        kwargs = json.loads(body)[1]
        if kwargs.get("jobs"):
            return {str(j) for j in kwargs["jobs"]}
        batch = kwargs.get("batch")
        return {derived_id(batch, str(d["id"]), task) for d in kwargs.get("documents") or []
                if isinstance(d, dict) and isinstance(d.get("id"), str)}
    except Exception:  # not ours to judge here: the transport dead-letters what it cannot read
        return set()


def _list_items(client: RedisClient, key: str) -> Iterator[bytes]:
    """A list's items from the right end (the oldest, taken next by BRPOP) to the left."""
    end = -1
    while True:
        page = client.lrange(key, end - PAGE + 1, end)
        if not page:
            return
        yield from reversed(page)
        if len(page) < PAGE:
            return
        end -= PAGE


def _unacked_items(client: RedisClient) -> Iterator[tuple[dict[str, Any], str]]:
    for _tag, value in client.hscan_iter(UNACKED_KEY, count=PAGE):
        try:
            message, _exchange, routing_key = json.loads(value)
        except Exception:
            continue
        yield message, str(routing_key)


def on_the_broker(client: RedisClient, wanted: dict[str, set[str]]) -> set[str]:
    """The wanted job ids (per task) that some message on the queues or in ``unacked`` names."""
    found: set[str] = set()
    for task, ids in wanted.items():
        for key in queue_lists(queue_name(task)):
            for item in _list_items(client, key):
                found |= jobs_of_item(item, task) & ids
                if ids <= found:
                    break
    by_queue = {queue_name(t): t for t in wanted}
    for message, routing_key in _unacked_items(client):
        owner = by_queue.get(routing_key)
        if owner is not None:
            found |= jobs_of_item(message, owner) & wanted[owner]
    return found


def queued_suspects(db: Engine, lost_after_s: float) -> list[tuple[str, str, str]]:
    """(job id, batch, task) of the jobs queued for longer than ``lost_after_s``, oldest first."""
    cutoff = utcnow() - timedelta(seconds=lost_after_s)
    with db.connect() as conn:
        rows = conn.execute(sa.select(col(Job.id), col(Job.batch_id), col(Job.task))
                            .where(col(Job.status) == JobStatus.queued.value, col(Job.created_at) < cutoff)
                            .order_by(col(Job.created_at)).limit(SUSPECT_LIMIT)).all()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def find_lost(db: Engine, client: RedisClient, lost_after_s: float, seen_missing: set[str]
              ) -> tuple[list[tuple[str, str, str]], set[str]]:
    """The jobs to publish again (missing now and in the previous round, whose ids are
    ``seen_missing``), and the ids missing now (the next round's ``seen_missing``)."""
    suspects = queued_suspects(db, lost_after_s)
    if not suspects:
        return [], set()
    batches = {batch for _, batch, _ in suspects}
    refused = {b for b in batches if deadletter.count_for_batch(client, b)}
    suspects = [s for s in suspects if s[1] not in refused]
    wanted: dict[str, set[str]] = {}
    for job_id, _batch, task in suspects:
        wanted.setdefault(task, set()).add(job_id)
    present = on_the_broker(client, wanted)
    missing = [s for s in suspects if s[0] not in present]
    return [s for s in missing if s[0] in seen_missing], {s[0] for s in missing}


def group(rows: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for job_id, batch_id, task in rows:
        groups.setdefault((batch_id, task), []).append(job_id)
    return groups
