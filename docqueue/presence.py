"""Which workers are alive and which queues they consume, kept in Redis so any program can ask.

Every worker's main process writes one record, ``docqueue:worker:<node name>``, a JSON object with
the queues it consumes, the queues it refused and why (a missing model), its device and process
count, refreshed every few seconds with an expiry: a worker that dies disappears by itself. The
producer reads them before enqueueing (does anyone consume this queue? if not, why?), and so can a
Java or Node integrator (``SCAN docqueue:worker:*``; ``GET``). Redis records were chosen over
Celery's ``inspect active_queues`` broadcast: they answer at once, need no reply timeout, and also
carry the refusals, which Celery knows nothing about.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEY_PREFIX = "docqueue:worker:"
#: A record lives this long unless refreshed (the worker refreshes it every third of it).
RECORD_TTL_S = 30


@dataclass(frozen=True)
class WorkerRecord:
    node: str
    pid: int
    queues: list[str]
    refused: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    processes: int = 1
    database: str = ""
    started_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "pid": self.pid, "queues": self.queues, "refused": self.refused,
                "device": self.device, "processes": self.processes, "database": self.database,
                "started_at": self.started_at}


def publish(client: Any, record: WorkerRecord) -> None:
    client.set(KEY_PREFIX + record.node, json.dumps(record.as_json()), ex=RECORD_TTL_S)


def withdraw(client: Any, node: str) -> None:
    client.delete(KEY_PREFIX + node)


def live_workers(client: Any) -> list[WorkerRecord]:
    records = []
    for key in client.scan_iter(match=KEY_PREFIX + "*", count=500):
        raw = client.get(key)
        if raw:
            try:
                records.append(WorkerRecord(**json.loads(raw)))
            except (TypeError, ValueError):
                continue  # a record written by another version: not ours to judge
    return records


#: One record per worker *process* (a prefork child, or a solo worker): what it holds and runs.
PROCESS_KEY_PREFIX = "docqueue:worker-process:"


@dataclass(frozen=True)
class ProcessRecord:
    """What one worker process has resident and is running, written by the process itself (only it
    knows its models; the main process of a prefork worker loads none). Keyed by the worker's node
    name and the pid, with the same expiry as :class:`WorkerRecord`."""

    node: str
    pid: int
    resident: list[str] = field(default_factory=list)  # "task:model" of every engine it holds
    in_flight: int = 0  # jobs it is running now
    batch: str | None = None  # the batch those jobs belong to (the first, when a message mixes some)
    updated_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "pid": self.pid, "resident": self.resident, "in_flight": self.in_flight,
                "batch": self.batch, "updated_at": self.updated_at}


def publish_process(client: Any, record: ProcessRecord) -> None:
    client.set(f"{PROCESS_KEY_PREFIX}{record.node}:{record.pid}", json.dumps(record.as_json()), ex=RECORD_TTL_S)


def withdraw_process(client: Any, node: str, pid: int) -> None:
    client.delete(f"{PROCESS_KEY_PREFIX}{node}:{pid}")


def live_processes(client: Any) -> list[ProcessRecord]:
    records = []
    for key in client.scan_iter(match=PROCESS_KEY_PREFIX + "*", count=500):
        raw = client.get(key)
        if raw:
            try:
                records.append(ProcessRecord(**json.loads(raw)))
            except (TypeError, ValueError):
                continue
    return records


@dataclass(frozen=True)
class QueueCoverage:
    """Who consumes a queue right now, and why the workers that do not, refused it."""

    queue: str
    consumers: list[str]
    refusals: dict[str, str]
    databases: dict[str, str] = field(default_factory=dict)  # consumer node -> its database (password hidden)

    def database_warning(self, database_url: str) -> str | None:
        """Consumers whose database is not ``database_url``: they refuse every message of a batch
        stored elsewhere (dead letters of kind ``unknown_jobs``), so the batch never finishes."""
        mine = database_key(database_url)
        other = {node: db for node, db in self.databases.items() if db and database_key(db) != mine}
        if not other:
            return None
        nodes = ", ".join(sorted(other))
        return (f"worker(s) {nodes} consuming queue {self.queue!r} use database {sorted(set(other.values()))[0]}, "
                f"not this one ({mine}): they will refuse its messages")

    def warning(self) -> str | None:
        if self.consumers:
            return None
        if self.refusals:
            why = "; ".join(f"{node}: {reason}" for node, reason in sorted(self.refusals.items()))
            return f"no worker consumes queue {self.queue!r}: the running workers refused it ({why})"
        return f"no worker consumes queue {self.queue!r} (start one: docqueue worker --queues {self.queue})"


def coverage(client: Any, queue: str) -> QueueCoverage:
    workers = live_workers(client)
    return QueueCoverage(queue, sorted(w.node for w in workers if queue in w.queues),
                         {w.node: w.refused[queue] for w in workers if queue in w.refused},
                         {w.node: w.database for w in workers if queue in w.queues})


def database_key(url: str) -> str:
    """A database URL as worker records show it, without driver or password: two URLs with the
    same key name the same database (``postgresql+psycopg://u:pw@h/db`` = ``postgresql://u:***@h/db``)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url
    bare = parsed._replace(drivername=parsed.get_backend_name(), password=None)
    return bare.render_as_string(hide_password=True)


def node_host(node: str) -> str:
    """The host part of a Celery node name (``name@host``); a refusal record's ``(exited)`` dropped."""
    return node.rpartition("@")[2].removesuffix(" (exited)")


def process_alive(pid: int) -> bool:
    """True when ``pid`` names a process of this PID namespace (signal 0 sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class LocalHealth:
    """The answer of ``docqueue worker --check``: healthy or not, in one line."""

    ok: bool
    line: str


def local_health(client: Any, hostname: str, queues: list[str] | None = None,
                 alive: Callable[[int], bool] = process_alive) -> LocalHealth:
    """Is a worker of this host alive and consuming (``queues``: each of them)?

    Alive means: its record is in Redis (refreshed every 10 s, gone 30 s after the last refresh, so a
    hung or disconnected main process falls out by itself), the record names this host, and its
    process still exists here (a record outlives a SIGKILL by up to 30 s; the PID check closes that
    gap). Consuming means: the record lists at least one queue (or every queue asked for); a worker
    that refused all its queues exits and leaves only a refusal record.
    """
    workers = live_workers(client)
    here = [w for w in workers if node_host(w.node) == hostname]
    running = [w for w in here if w.queues and not w.node.endswith("(exited)") and alive(w.pid)]
    if not running:
        if not here:
            elsewhere = len(workers)
            return LocalHealth(False, f"no docqueue worker alive on {hostname}: no record "
                                      f"{KEY_PREFIX}*@{hostname} in Redis ({elsewhere} worker(s) on other hosts)")
        gone = [w for w in here if w.queues and not alive(w.pid)]
        if gone:
            return LocalHealth(False, f"no docqueue worker alive on {hostname}: {gone[0].node} left a record "
                                      f"but its process {gone[0].pid} is gone")
        why = "; ".join(f"{q}: {r}" for w in here for q, r in w.refused.items()) or "no queue"
        return LocalHealth(False, f"no docqueue worker consuming on {hostname}: it refused its queues ({why})")
    consumed = {q for w in running for q in w.queues}
    missing = [q for q in (queues or []) if q not in consumed]
    if missing:
        refused = {q: r for w in here for q, r in w.refused.items() if q in missing}
        why = f" (refused: {'; '.join(f'{q}: {r}' for q, r in refused.items())})" if refused else ""
        return LocalHealth(False, f"no docqueue worker on {hostname} consumes {','.join(missing)}{why}")
    described = "; ".join(f"{w.node} consumes {','.join(w.queues)} ({w.device}, {w.processes} process(es))"
                          for w in running)
    return LocalHealth(True, f"ok: {described}")
