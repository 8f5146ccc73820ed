"""The dead-letter store: every message a worker refused, kept in Redis beside the queues.

Why Redis and not the database: the transport has just popped the bytes from Redis, and the same
server is the one most likely to take them back at that instant (a worker pointed at the wrong
database, or one whose database is down, must still not lose what it refused). Production Redis
runs with AOF (see docker-compose.yml), so dead letters survive a restart like queued messages.

Layout, all under ``docqueue:dlq``: a sorted set of entry ids scored by arrival time, and one
hash per entry (``docqueue:dlq:<id>``) holding the raw item (capped), its size, the queue, the
error kind and reason, the batch where one could be read, and where it came from. The store is
bounded: beyond ``max_entries`` the oldest entries are dropped, so a flood of garbage cannot fill
Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from docqueue.schema import new_id

#: A redis-py client (``redis.Redis``); its command stubs type replies too loosely to be useful here.
RedisClient = Any

INDEX_KEY = "docqueue:dlq"
ENTRY_PREFIX = "docqueue:dlq:"
#: Entries by batch, so ``docqueue status`` can say how many messages of a batch were refused.
BATCH_PREFIX = "docqueue:dlq-batch:"

#: Where an entry came from: the transport (raw bytes replayable as they are) or a task that
#: decoded the Celery message but refused its docqueue kwargs (replayed by sending them again).
ORIGIN_TRANSPORT = "transport"
ORIGIN_TASK = "task"


@dataclass(frozen=True)
class DeadLetter:
    """One refused message, as listed and shown by ``docqueue dlq``."""

    id: str
    queue: str
    kind: str
    reason: str
    received_at: float
    size: int
    truncated: bool
    origin: str
    batch: str | None = None
    worker: str | None = None
    task: str | None = None
    #: The publisher's ``properties.correlation_id``, where it could be read (also from an item too large
    #: to keep whole: its headers are at the end, beyond the bytes kept).
    correlation_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def add(client: RedisClient, *, raw: bytes, queue: str, kind: str, reason: str, origin: str,
        max_raw_bytes: int, max_entries: int, batch: str | None = None, worker: str | None = None,
        task: str | None = None, correlation_id: str | None = None, size: int | None = None) -> str:
    """Store a refused message; returns its id. ``raw`` beyond ``max_raw_bytes`` is cut (and the
    entry marked truncated: it can be shown but not replayed). ``size``: of the whole item, where
    ``raw`` is only its first bytes (an oversized item is never read whole)."""
    size = len(raw) if size is None else size
    entry_id = new_id()
    now = time.time()
    fields: dict[str, Any] = {
        "queue": queue, "kind": kind, "reason": reason[:4000], "received_at": repr(now), "size": size,
        "truncated": int(size > max_raw_bytes), "origin": origin, "raw": raw[:max_raw_bytes],
        "batch": batch or "", "worker": worker or "", "task": task or "", "correlation_id": correlation_id or "",
    }
    key = ENTRY_PREFIX + entry_id
    with client.pipeline() as pipe:
        pipe.hset(key, mapping=fields)
        pipe.zadd(INDEX_KEY, {entry_id: now})
        if batch:
            pipe.sadd(BATCH_PREFIX + batch, entry_id)
        pipe.execute()
    _trim(client, max_entries)
    return entry_id


def _trim(client: RedisClient, max_entries: int) -> None:
    excess = int(client.zcard(INDEX_KEY)) - max_entries
    if excess > 0:
        for old in client.zrange(INDEX_KEY, 0, excess - 1):
            delete(client, old.decode() if isinstance(old, bytes) else str(old))


def _decode(entry_id: str, fields: dict[bytes, bytes]) -> DeadLetter:
    f = {k.decode(): v for k, v in fields.items()}

    def text(name: str) -> str:
        return f.get(name, b"").decode("utf-8", "replace")

    return DeadLetter(id=entry_id, queue=text("queue"), kind=text("kind"), reason=text("reason"),
                      received_at=float(text("received_at") or 0), size=int(text("size") or 0),
                      truncated=text("truncated") == "1", origin=text("origin"), batch=text("batch") or None,
                      worker=text("worker") or None, task=text("task") or None,
                      correlation_id=text("correlation_id") or None)


def entries(client: RedisClient, batch: str | None = None, limit: int | None = None) -> Iterator[DeadLetter]:
    """Dead letters, oldest first (of one batch when ``batch`` is given)."""
    if batch:
        ids = sorted(i.decode() for i in client.smembers(BATCH_PREFIX + batch))
    else:
        ids = [i.decode() for i in client.zrange(INDEX_KEY, 0, -1 if limit is None else limit - 1)]
    for entry_id in ids[:limit] if limit is not None else ids:
        fields = client.hgetall(ENTRY_PREFIX + entry_id)
        if fields:
            yield _decode(entry_id, fields)


def count_for_batch(client: RedisClient, batch: str) -> int:
    return int(client.scard(BATCH_PREFIX + batch))


def get(client: RedisClient, entry_id: str) -> tuple[DeadLetter, bytes] | None:
    """An entry and its (possibly truncated) raw bytes."""
    fields = client.hgetall(ENTRY_PREFIX + entry_id)
    if not fields:
        return None
    return _decode(entry_id, fields), fields.get(b"raw", b"")


def delete(client: RedisClient, entry_id: str) -> bool:
    found = get(client, entry_id)
    with client.pipeline() as pipe:
        pipe.delete(ENTRY_PREFIX + entry_id)
        pipe.zrem(INDEX_KEY, entry_id)
        if found and found[0].batch:
            pipe.srem(BATCH_PREFIX + found[0].batch, entry_id)
        pipe.execute()
    return found is not None


def purge(client: RedisClient) -> int:
    """Delete every entry; returns how many there were."""
    ids = [i.decode() for i in client.zrange(INDEX_KEY, 0, -1)]
    for entry_id in ids:
        delete(client, entry_id)
    return len(ids)


def task_raw(task: str, kwargs: dict[str, Any], task_id: str) -> bytes:
    """What a task-level entry keeps: the task and kwargs it refused (JSON), enough to send again.
    Kwargs holding a lone surrogate (refused for that very reason) are kept as ASCII escapes, which
    UTF-8 can carry and ``json.loads`` turns back into the same value for a replay."""
    refused = {"task": task, "id": task_id, "kwargs": kwargs}
    try:
        return json.dumps(refused, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(refused, ensure_ascii=True).encode()
