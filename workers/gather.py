"""Gathering a trickle: pulling the messages already waiting on a queue into the current batch.

Integrations often publish one document per message (the inline ``documents`` form). Run one by
one, each would pay a whole forward pass (and a transaction) for a single text. So when a task
receives such a message, smaller than the micro-batch budget, it pulls more messages of the same
queue straight from the broker
(kombu ``Queue.get``, a synchronous ``basic_get`` without auto-ack), for at most a few milliseconds,
and processes them all as one batch.

Delivery guarantees are those of the message Celery handed over:

* a pulled message is *unacknowledged* until the results of the whole batch are committed: kombu's
  Redis transport keeps it in the ``unacked`` hash, exactly where Celery's own consumer keeps an
  ``acks_late`` message; if the process dies, it is restored to the queue after the visibility
  timeout, like Celery's own messages;
* when processing fails, every pulled message is put back on its queue at once (``reject`` with
  requeue) and is delivered again normally, with its own retries;
* poison never gets here: ``Queue.get`` goes through ``docqueue.transport``, which dead-letters an
  item that is not a valid envelope (not JSON, pickle, wrong shape) where it is popped;
* a valid message this code does not take (another task, a Celery retry waiting for its countdown,
  docqueue kwargs that do not validate) is put back untouched and gathering stops, so Celery's own
  consumer runs it the usual way (the task dead-letters invalid kwargs with their error).

celery-batches does this in the consumer instead, but it pins ``celery<5.7``; this needs only kombu.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu import Connection, Queue
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message

from docqueue.errors import MessageError
from docqueue.schema import TaskMessage

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the producer's estimate (producer.batching); no tokenizer needed here


@dataclass(frozen=True)
class Budget:
    """How much one gathered batch may hold, and how long to wait for more when the queue is empty."""

    max_docs: int
    max_tokens: int
    wait_s: float
    token_cap: int = 256


@dataclass
class Gathered:
    """A pulled message, still unacknowledged, with its decoded envelope."""

    raw: Message
    message: TaskMessage


def message_size(message: TaskMessage, token_cap: int) -> tuple[int, int]:
    """(documents, estimated tokens) of a message; a ``jobs`` message's texts are not at hand, so
    each of its jobs counts as a full window."""
    if message.jobs:
        return len(message.jobs), len(message.jobs) * token_cap
    tokens = sum(min(token_cap, len(d.text) // CHARS_PER_TOKEN + 1) for d in message.documents)
    return len(message.documents), tokens


class Gatherer:
    """Pulls waiting messages of one Celery app's queues; one broker connection per process."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._queues: dict[str, Queue] = {}

    def _queue(self, name: str) -> Queue:
        if self._conn is None or self._pid != os.getpid():
            # a prefork child must not use its parent's socket: open its own after the fork
            self._conn, self._pid, self._queues = self.app.connection_for_read(), os.getpid(), {}
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, channel=self._conn.default_channel)
        return queue

    def _drop_connection(self) -> None:
        conn, self._conn, self._queues = self._conn, None, {}
        if conn is not None:
            try:
                conn.release()
            except Exception:
                log.debug("closing the gather connection failed", exc_info=True)

    def gather(self, *, queue: str, task_name: str, first: TaskMessage, budget: Budget) -> list[Gathered]:
        """Messages waiting on ``queue`` for ``task_name``, until ``first`` plus them fill the budget.

        Gives up quietly on broker errors: gathering only makes batches bigger, and a message
        Celery already delivered must not fail because of it.
        """
        docs, tokens = message_size(first, budget.token_cap)
        pulled: list[Gathered] = []
        deadline = time.monotonic() + budget.wait_s
        try:
            q = self._queue(queue)
            while docs < budget.max_docs and tokens < budget.max_tokens:
                raw = q.get(no_ack=False, accept=["json"])
                if raw is None:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.0005)
                    continue
                message = self._understood(raw, task_name)
                if message is None:
                    raw.reject(requeue=True)
                    break
                pulled.append(Gathered(raw, message))
                n, t = message_size(message, budget.token_cap)
                docs, tokens = docs + n, tokens + t
        except Exception:
            log.warning("gathering waiting messages failed; going on with %d", len(pulled), exc_info=True)
            self._drop_connection()
        return pulled

    @staticmethod
    def _understood(raw: Message, task_name: str) -> TaskMessage | None:
        headers: dict[str, Any] = raw.headers or {}
        if headers.get("task") != task_name or headers.get("eta") or headers.get("retries"):
            return None
        try:
            body = raw.decode()
        except (ContentDisallowed, DecodeError, ValueError):
            return None
        if not (isinstance(body, list) and len(body) == 3 and not body[0] and isinstance(body[1], dict)):
            return None
        try:
            return TaskMessage.decode(body[1], correlation_id=(raw.properties or {}).get("correlation_id"))
        except MessageError:
            return None

    def ack(self, pulled: Sequence[Gathered]) -> None:
        """Acknowledge pulled messages: call only once their outcomes are committed."""
        for g in pulled:
            g.raw.ack()

    def requeue(self, pulled: Sequence[Gathered]) -> None:
        """Put pulled messages back for normal delivery (processing them failed)."""
        for g in pulled:
            try:
                g.raw.reject(requeue=True)
            except Exception:
                # still in the unacked hash: restored after the visibility timeout
                log.warning("could not put a gathered message back; it returns after the visibility timeout",
                            exc_info=True)
