"""Does anyone run what ``submit`` is about to enqueue? Asked before the first row is written.

The answer comes from the workers' records in Redis (``docqueue.presence``): a queue nobody consumes
gets a warning naming why the running workers refused it (a missing model, say), ``--require-worker``
makes that an error (exit 3), and ``--wait`` gives up after ``--no-worker-timeout`` seconds without
a consumer instead of waiting forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click

from docqueue import deadletter, presence
from docqueue.broker import redis_client

#: Exit status of a submission refused because no worker consumes its queue.
EXIT_NO_WORKER = 3

WORKER_CHECK_OPTIONS = [
    click.option("--require-worker/--no-require-worker", default=False, envvar="DOCQUEUE_REQUIRE_WORKER",
                 show_envvar=True,
                 help="Refuse the submission (exit 3, nothing stored) when no worker consumes its queue."),
    click.option("--no-worker-timeout", type=click.FloatRange(0), default=60.0, envvar="DOCQUEUE_NO_WORKER_TIMEOUT",
                 show_envvar=True,
                 help="With --wait: stop after this many seconds in which no worker consumes the queue (0: never)."),
]


@dataclass(frozen=True)
class WorkerCheck:
    """What WORKER_CHECK_OPTIONS asked for."""

    require_worker: bool = False
    no_worker_timeout: float = 60.0


def pop_worker_check(kwargs: dict[str, Any]) -> WorkerCheck:
    """The worker-check options out of a command's keyword arguments (removed from them)."""
    return WorkerCheck(require_worker=bool(kwargs.pop("require_worker", False)),
                       no_worker_timeout=float(kwargs.pop("no_worker_timeout", 60.0)))


class NoWorker(click.ClickException):
    exit_code = EXIT_NO_WORKER


def coverage_warning(broker_url: str, queue: str) -> str | None:
    """The warning for ``queue``, or None when a worker consumes it (or Redis cannot say)."""
    try:
        return presence.coverage(redis_client(broker_url, timeout=3), queue).warning()
    except Exception:
        return None


def check_before_submit(broker_url: str, queue: str, warn: Any, require_worker: bool = False,
                        database_url: str | None = None) -> None:
    """Warn (or, with --require-worker, refuse) when no worker consumes ``queue``; warn when the
    workers that do use another database than ``database_url`` (they would refuse the messages)."""
    try:
        found = presence.coverage(redis_client(broker_url, timeout=3), queue)
    except Exception:
        return  # Redis cannot say: submit's own broker check reports a dead broker
    other = found.database_warning(database_url) if database_url else None
    if other:
        warn(f"warning: {other}; run `docqueue submit` with their DATABASE_URL, or workers on this one")
    warning = found.warning()
    if warning is None:
        return
    if require_worker:
        raise NoWorker(f"{warning}; nothing was stored (--require-worker)")
    warn(f"warning: {warning}; the jobs will wait until one does")


class ConsumerWatch:
    """Tracks, during ``--wait``, how long the queue has had no consumer."""

    def __init__(self, broker_url: str, queue: str, timeout_s: float, every_s: float = 2.0,
                 batch: str | None = None) -> None:
        self.broker_url, self.queue, self.timeout_s, self.every_s = broker_url, queue, timeout_s, every_s
        self.batch = batch
        self._since: float | None = None
        self._checked = 0.0

    def check(self) -> None:
        """Raise :class:`NoWorker` once the queue has had no consumer for longer than the timeout,
        or as soon as a worker refused a message of ``batch`` (it would never finish)."""
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return
        self._checked = now
        if self.batch is not None:
            self._check_refusals(self.batch)
        if self.timeout_s <= 0:
            return
        warning = coverage_warning(self.broker_url, self.queue)
        if warning is None:
            self._since = None
            return
        self._since = self._since or now
        if now - self._since >= self.timeout_s:
            raise NoWorker(f"stopped waiting: {warning} for {self.timeout_s:g}s; the batch stays stored "
                           "and runs once a worker consumes the queue (or `docqueue cancel` it)")

    def _check_refusals(self, batch: str) -> None:
        try:
            client = redis_client(self.broker_url, timeout=3)
            refused = deadletter.count_for_batch(client, batch)
            first = next(deadletter.entries(client, batch=batch, limit=1), None) if refused else None
        except Exception:
            return  # Redis cannot say; keep waiting
        if first is not None:
            raise NoWorker(f"stopped waiting: a worker refused {refused} message(s) of batch {batch} "
                           f"({first.kind}: {first.reason}); see `docqueue dlq list --batch {batch}`")
