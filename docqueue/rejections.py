"""A refused message, made visible: the dead letter, a ``message.rejected`` event, and its webhook.

Why one function for it: a publisher that does not use Python cannot run ``docqueue dlq list``.
Before this, a message refused at the queue (``docqueue.transport``) or by a task
(``workers.tasks``) was only a dead letter in Redis: the program that sent it never heard. Now each
refusal also puts ``message.rejected`` on the events stream (``docqueue:events``, the stream it
already reads for completions) with the batch, the publisher's correlation id, the kind and the
reason; and where the refused message itself named a ``webhook`` that docqueue accepts, the same
event is POSTed there by the webhook workers.

It runs beside the transport as well as in tasks, so it needs nothing but a Redis client: the
webhook delivery is enqueued as the documented envelope (docqueue/contract/envelope.schema.json)
on the ``webhooks`` queue, exactly what a foreign publisher would push.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from docqueue import deadletter
from docqueue.events import MESSAGE_REJECTED, STREAM, Event, _envelope, _flat
from docqueue.storable import storable_text
from docqueue.webhooks import DELIVER_TASK, WEBHOOK_QUEUE, check_url

log = logging.getLogger(__name__)

#: The reason an event carries is cut here (the dead letter keeps up to 4,000 characters).
EVENT_REASON_CHARS = 2000


@dataclass(frozen=True)
class Refusal:
    """One refused message: what the dead letter and the event say about it."""

    queue: str
    kind: str
    reason: str
    origin: str
    batch: str | None = None
    correlation_id: str | None = None
    webhook: str | None = None  # the refused message's own ``webhook``, where it named a valid one
    worker: str | None = None
    task: str | None = None


@dataclass(frozen=True)
class Limits:
    """The bounds a refusal is stored under (from the settings)."""

    max_raw_bytes: int
    max_entries: int
    events_maxlen: int


def rejected_event(entry_id: str, refusal: Refusal, size: int) -> Event:
    """The ``message.rejected`` event of a stored dead letter (docqueue/contract/event.schema.json)."""
    data = _envelope(MESSAGE_REJECTED, refusal.batch or "")
    data["batch"] = refusal.batch
    data.update({"queue": refusal.queue, "kind": refusal.kind, "reason": refusal.reason[:EVENT_REASON_CHARS],
                 "correlation_id": refusal.correlation_id, "dead_letter": entry_id, "size": size})
    flat = _flat(data, ("v", "id", "type", "timestamp", "batch", "queue", "kind", "reason", "correlation_id",
                        "dead_letter", "size"))
    return Event(data, flat, webhook=refusal.webhook)


def valid_webhook(value: Any) -> str | None:
    """``value`` if it is a webhook URL docqueue would POST to, else None (a refusal must not fail
    because the URL it could have used is itself wrong)."""
    if not isinstance(value, str):
        return None
    try:
        return check_url(value)
    except ValueError:
        return None


def webhook_item(url: str, event: dict[str, Any]) -> bytes:
    """A ``docqueue.deliver_webhook`` task as the raw Redis item kombu reads (Celery protocol 2,
    JSON body in base64), for enqueuing without a Celery app."""
    task_id = str(uuid.uuid4())
    body = [[], {"url": url, "event": event}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    envelope = {
        "body": base64.b64encode(json.dumps(body, ensure_ascii=True).encode()).decode(),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": DELIVER_TASK, "id": task_id, "root_id": task_id, "parent_id": None,
                    "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
                    "argsrepr": "()", "kwargsrepr": f"<{MESSAGE_REJECTED} {event['id']}>"},
        "properties": {"correlation_id": task_id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4()),
                       "delivery_info": {"exchange": "", "routing_key": WEBHOOK_QUEUE}},
    }
    return json.dumps(envelope).encode()


def record(client: Any, raw: bytes, refusal: Refusal, limits: Limits, size: int | None = None) -> str:
    """Store the dead letter, then announce it (stream, and webhook where the message named one);
    returns the dead letter's id. An announcement that fails is logged: the dead letter stays.
    ``size``: of the whole item, where ``raw`` is only the first bytes of an oversized one."""
    size = len(raw) if size is None else size
    # a reason may quote the input (a lone surrogate): Redis takes UTF-8 only
    refusal = replace(refusal, reason=storable_text(refusal.reason))
    entry = deadletter.add(client, raw=raw, queue=refusal.queue, kind=refusal.kind, reason=refusal.reason,
                           origin=refusal.origin, max_raw_bytes=limits.max_raw_bytes, size=size,
                           max_entries=limits.max_entries, batch=refusal.batch, worker=refusal.worker,
                           task=refusal.task, correlation_id=refusal.correlation_id)
    try:
        event = rejected_event(entry, refusal, size)
        client.xadd(STREAM, event.fields(), maxlen=limits.events_maxlen, approximate=True)
        if event.webhook:
            client.lpush(WEBHOOK_QUEUE, webhook_item(event.webhook, event.data))
    except Exception:
        log.exception("dead letter %s stored, but its message.rejected event could not be written", entry)
    return entry
