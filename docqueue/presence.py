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
                         {w.node: w.refused[queue] for w in workers if queue in w.refused})
