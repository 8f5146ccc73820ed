"""Completion events: one Redis stream entry per finished document and per finished batch.

Any language reads them with ``XREAD``/``XREADGROUP`` on ``docqueue:events`` (README, "Completion
events and webhooks"); ``docqueue events`` is the CLI reader. Each entry has flat string fields
(``type``, ``batch``, ``status``...) plus ``data``, the whole event as JSON, which is also the body
of a webhook POST. ``docqueue/contract/event.schema.json`` is the contract.

Who writes them: whoever committed the outcome, right after the commit, so an event never names an
outcome the database does not hold:

* a model worker, for the jobs it ran (``workers.pipeline``), for the inline documents it rejected
  (``invalid_document``, ``duplicate_document``) and for jobs it gave up on (``internal_error``);
* ``submit``, for documents that failed while being read and for results reused at once;
* ``cancel``, for the jobs it cancelled (status ``cancelled``).

Which jobs a caller finished is read back from the database: those among its jobs whose
``finished_at`` is exactly the timestamp it wrote (outcomes are written only over unfinished jobs, so
a job another writer finished first carries that writer's timestamp and gets that writer's event).

Batch finished, exactly once: after its commit every writer asks whether the batch has any job left
unfinished (one index seek); where none is left it takes ``SET NX`` on a key named after the batch
and the newest ``finished_at`` of its jobs. Two workers finishing a batch's last jobs together both
see the same newest timestamp (each looks only after its own commit), so only one key, and one
event, exists. A batch that runs again (``docqueue retry``) finishes with a newer timestamp and gets
a new event. While ``submit`` is still storing a batch it holds ``docqueue:batch-open:<batch>``, so
workers that drain the first chunks do not call the batch finished; ``submit`` looks itself once it
has stored everything.

What is not guaranteed: events are written after the commit, so a Redis failure at that instant
loses them (logged; the database keeps the outcome). Between two workers, order is not guaranteed:
the document events of a batch's very last jobs may land just after its ``batch.finished``, whose
``counts`` say how many document events there are. The stream is capped (``events_maxlen``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Batch, Document, Job, utcnow
from docqueue.schema import UNFINISHED, JobStatus, new_id
from docqueue.secrets import mask_url
from docqueue.settings import Settings
from docqueue.webhooks import DELIVER_TASK, WEBHOOK_QUEUE

log = logging.getLogger(__name__)

STREAM = "docqueue:events"
EVENT_VERSION = 1
DOCUMENT_FINISHED = "document.finished"
BATCH_FINISHED = "batch.finished"
WEBHOOK_FAILED = "webhook.failed"
MESSAGE_REJECTED = "message.rejected"  # written by docqueue.rejections
TRAIN_PROGRESS = "train.progress"
EVENT_TYPES = (DOCUMENT_FINISHED, BATCH_FINISHED, WEBHOOK_FAILED, MESSAGE_REJECTED, TRAIN_PROGRESS)

#: Held by ``submit`` while it stores a batch (refreshed each chunk; a killed submit's lapses).
OPEN_PREFIX = "docqueue:batch-open:"
OPEN_TTL_S = 3600
#: ``SET NX`` per (batch, newest finished_at): the one writer that sets it emits batch.finished.
FINISHED_PREFIX = "docqueue:batch-finished:"
FINISHED_TTL_S = 7 * 24 * 3600

_TERMINAL = tuple(s.value for s in JobStatus if s.terminal)
#: SQLite's bound-parameter limit, with room for the other parameters of a query.
_IN_CHUNK = 900
_PIPELINE = 500

RedisClient = Any


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat()  # UTC-aware by column type (docqueue.models.UtcDateTime) or utcnow()


def public_url(url: str) -> str:
    """A webhook URL as events and logs show it: no password, no query (tokens often live there)."""
    parts = urlsplit(mask_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass
class Event:
    """One stream entry: ``data`` is the whole event; ``flat`` the fields readers filter on."""

    data: dict[str, Any]
    flat: dict[str, str]
    webhook: str | None = None  # POST it here as well

    def fields(self) -> dict[str, str]:
        return {**self.flat, "data": json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))}


def _envelope(kind: str, batch: str) -> dict[str, Any]:
    return {"v": EVENT_VERSION, "id": new_id(), "type": kind, "timestamp": _iso(utcnow()), "batch": batch}


def _flat(data: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Stream fields are strings: null is the empty string, numbers their decimal form."""
    return {n: "" if data.get(n) is None else str(data[n]) for n in names}


_COMMON = ("v", "id", "type", "timestamp", "batch")


def document_event(row: Any, task: str, max_result_bytes: int) -> Event:
    data = _envelope(DOCUMENT_FINISHED, row.batch_id)
    failed = row.status == JobStatus.failed.value
    result, omitted = row.result, False
    if result is not None and len(json.dumps(result, ensure_ascii=False)) > max_result_bytes:
        result, omitted = None, True
    metadata = row.metadata or {}  # the document's, as sent or read: bounded like the result
    if len(json.dumps(metadata, ensure_ascii=False)) > max_result_bytes:
        metadata = None
    data.update({
        "task": task, "document": row.source, "document_id": row.document_id, "job_id": row.job_id,
        "external_id": row.external_id, "position": row.position, "status": row.status,
        "error": {"kind": row.error_kind, "message": row.error_message} if failed else None,
        "result": result if not failed else None, "result_omitted": omitted, "metadata": metadata,
        "model": {"id": row.model_id, "revision": row.model_revision} if row.model_id else None,
        "reused_from": row.reused_from, "finished_at": _iso(row.finished_at),
    })
    flat = _flat(data, (*_COMMON, "task", "document", "document_id", "job_id", "external_id", "status"))
    flat["error_kind"] = (row.error_kind or "") if failed else ""
    flat["error_message"] = (row.error_message or "") if failed else ""
    return Event(data, flat)


def batch_event(batch: str, task: str, counts: dict[str, int], finished_at: datetime | None) -> Event:
    data = _envelope(BATCH_FINISHED, batch)
    total = sum(counts.values())
    data.update({
        "task": task, "state": "cancelled" if counts.get(JobStatus.cancelled.value) else "finished", "total": total,
        "counts": {s: counts.get(s, 0) for s in _TERMINAL}, "finished_at": _iso(finished_at),
    })
    flat = _flat(data, (*_COMMON, "task", "state", "total"))
    flat.update({s: str(counts.get(s, 0)) for s in _TERMINAL})
    return Event(data, flat)


def webhook_failed_event(event: dict[str, Any], url: str, attempts: int, error: str) -> Event:
    data = _envelope(WEBHOOK_FAILED, str(event.get("batch") or ""))
    data.update({"url": public_url(url), "event_id": event.get("id"), "event_type": event.get("type"),
                 "attempts": attempts, "error": error[:2000]})
    return Event(data, _flat(data, (*_COMMON, "url", "event_id", "event_type", "attempts", "error")))


def train_progress_event(batch: str, job_id: str, stage: str, done: int, total: int, loss: float | None) -> Event:
    """A training job's progress (``docqueue train``); not a completion: nothing is committed with it."""
    data = _envelope(TRAIN_PROGRESS, batch)
    data.update({"job_id": job_id, "stage": stage, "done": done, "total": total, "loss": loss})
    return Event(data, _flat(data, (*_COMMON, "job_id", "stage", "done", "total")))


class EventSink:
    """Where events go: the stream on the broker's Redis, and webhook deliveries onto the
    ``webhooks`` queue. Workers use the Celery app's own connection pool; the CLI passes a plain
    client with short timeouts (``redis``), so a dead broker fails fast instead of kombu retrying."""

    def __init__(self, app: Celery, settings: Settings, redis: RedisClient | None = None) -> None:
        self.app, self.settings, self.redis = app, settings, redis

    @contextmanager
    def client(self) -> Iterator[RedisClient]:
        if self.redis is not None:
            yield self.redis
            return
        # the app's connection pool: a fresh connection (connection_for_write) costs tens of ms, more
        # than the XADDs of a whole message (ops/bench/events_overhead.py)
        with self.app.pool.acquire(block=True) as conn:
            yield conn.default_channel.client

    def publish(self, events: Sequence[Event], client: RedisClient | None = None) -> None:
        """XADD every event (pipelined), then enqueue the webhooks they ask for."""
        if not events:
            return
        if client is None:
            with self.client() as own:
                return self.publish(events, own)
        for start in range(0, len(events), _PIPELINE):
            with client.pipeline(transaction=False) as pipe:
                for event in events[start:start + _PIPELINE]:
                    pipe.xadd(STREAM, event.fields(), maxlen=self.settings.events_maxlen, approximate=True)
                pipe.execute()
        hooks = [e for e in events if e.webhook]
        if hooks:
            with self.app.producer_or_acquire() as producer:
                for e in hooks:
                    self.app.send_task(DELIVER_TASK, kwargs={"url": e.webhook, "event": e.data}, queue=WEBHOOK_QUEUE,
                                       producer=producer, argsrepr="()",
                                       kwargsrepr=f"<{e.data['type']} {e.data['id']} of batch {e.data['batch']}>")


@dataclass
class EmitReport:
    documents: int = 0
    batches: list[str] = field(default_factory=list)


_ROW_COLUMNS: list[Any] = [
    col(Job.id).label("job_id"), col(Job.batch_id).label("batch_id"), col(Job.status).label("status"),
    col(Job.error_kind).label("error_kind"), col(Job.error_message).label("error_message"),
    col(Job.result).label("result"), col(Job.model_id).label("model_id"),
    col(Job.model_revision).label("model_revision"), col(Job.finished_at).label("finished_at"),
    col(Job.reused_from).label("reused_from"), col(Document.id).label("document_id"),
    col(Document.source).label("source"), col(Document.external_id).label("external_id"),
    col(Document.position).label("position"), col(Document.meta).label("metadata"),
]


def _finished_rows(conn: sa.Connection, finished_at: datetime, job_ids: Sequence[str] | None,
                   batch: str | None) -> Iterator[Any]:
    base = (sa.select(*_ROW_COLUMNS).join(Document, col(Document.id) == col(Job.document_id))
            .where(col(Job.finished_at) == finished_at, col(Job.status).in_(_TERMINAL)))
    if batch is not None:
        yield from conn.execution_options(yield_per=_PIPELINE).execute(
            base.where(col(Job.batch_id) == batch).order_by(col(Document.position)))
        return
    ids = list(job_ids or ())
    for start in range(0, len(ids), _IN_CHUNK):
        yield from conn.execute(base.where(col(Job.id).in_(ids[start:start + _IN_CHUNK])))


def _batch_info(conn: sa.Connection, batch_ids: Iterable[str]) -> dict[str, tuple[str, str | None, bool]]:
    ids = list(batch_ids)
    out: dict[str, tuple[str, str | None, bool]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        rows = conn.execute(sa.select(col(Batch.id), col(Batch.task), col(Batch.webhook_url),
                                      col(Batch.webhook_documents)).where(col(Batch.id).in_(chunk)))
        for bid, task, url, per_doc in rows:
            out[bid] = (task, url, bool(per_doc))
    return out


def emit_finished(sink: EventSink, engine: Engine, *, finished_at: datetime, job_ids: Sequence[str] | None = None,
                  batch: str | None = None) -> EmitReport:
    """Events for the jobs this caller just finished (``finished_at`` is the timestamp it wrote, among
    ``job_ids`` or in ``batch``), then batch.finished for every batch of theirs now finished.

    Never raises: the outcomes are committed whatever happens here, and a Celery retry of the message
    would find its jobs finished and emit nothing either; a failure is logged as lost events.
    """
    report = EmitReport()
    try:
        with sink.client() as client:
            info: dict[str, tuple[str, str | None, bool]] = {}
            pending: list[Event] = []
            with engine.connect() as conn:
                for row in _finished_rows(conn, finished_at, job_ids, batch):
                    if row.batch_id not in info:
                        info.update(_batch_info(conn, [row.batch_id]))
                    task, url, per_doc = info.get(row.batch_id, ("", None, False))
                    event = document_event(row, task, sink.settings.events_result_max_bytes)
                    event.webhook = url if per_doc else None
                    pending.append(event)
                    if len(pending) >= _PIPELINE:
                        sink.publish(pending, client)
                        report.documents += len(pending)
                        pending = []
            sink.publish(pending, client)
            report.documents += len(pending)
            report.batches = finish_batches(sink, engine, info if info else ([batch] if batch else []), client)
    except Exception:
        log.exception("completion events lost for jobs finished at %s (the outcomes are stored)", _iso(finished_at))
    return report


def finish_batches(sink: EventSink, engine: Engine, batch_ids: Iterable[str],
                   client: RedisClient | None = None) -> list[str]:
    """Emit batch.finished for each of ``batch_ids`` that has no unfinished job and is not being
    submitted, once per (batch, newest finished_at); returns the batches it emitted for."""
    if client is None:
        with sink.client() as own:
            return finish_batches(sink, engine, batch_ids, own)
    emitted: list[str] = []
    events: list[Event] = []
    with engine.connect() as conn:
        for batch in batch_ids:
            if client.exists(OPEN_PREFIX + batch):
                continue
            busy = conn.execute(sa.select(col(Job.id)).where(col(Job.batch_id) == batch,
                                                             col(Job.status).in_(UNFINISHED)).limit(1)).first()
            if busy is not None:
                continue
            rows = conn.execute(sa.select(col(Job.status), sa.func.count(), sa.func.max(col(Job.finished_at)))
                                .where(col(Job.batch_id) == batch).group_by(col(Job.status))).all()
            if not rows or any(status in UNFINISHED for status, _, _ in rows):
                continue
            stamps = [r[2] for r in rows if r[2] is not None]
            newest = max(stamps) if stamps else None
            counts = {status: int(n) for status, n, _ in rows}
            key = f"{FINISHED_PREFIX}{batch}:{_iso(newest)}:{sum(counts.values())}"
            info = _batch_info(conn, [batch]).get(batch)
            if info is None:
                continue
            task, url, _ = info
            event = batch_event(batch, task, counts, newest)
            if not client.set(key, event.data["id"], nx=True, ex=FINISHED_TTL_S):
                continue  # another writer saw the same finish and emits it
            event.webhook = url
            events.append(event)
            emitted.append(batch)
    sink.publish(events, client)
    return emitted


def open_batch(sink: EventSink, batch: str) -> None:
    """Mark ``batch`` as still being stored (``submit``): workers draining it do not call it finished.
    Never raises: without Redis the submit's publish fails anyway, and says so."""
    try:
        with sink.client() as client:
            client.set(OPEN_PREFIX + batch, "1", ex=OPEN_TTL_S)
    except Exception as e:  # one line: a broken broker is reported by the publish that follows
        log.warning("could not mark batch %s open for completion events (%s: %s)", batch, type(e).__name__, e)


def close_batch(sink: EventSink, engine: Engine, batch: str) -> list[str]:
    """Everything is stored: drop the mark and emit batch.finished if the workers already finished it
    (or no job needed a worker: all unreadable or reused). Never raises, as :func:`emit_finished`."""
    try:
        with sink.client() as client:
            client.delete(OPEN_PREFIX + batch)
            return finish_batches(sink, engine, [batch], client)
    except Exception as e:  # one line, as above: the submit's own error says what to do
        log.error("could not close batch %s for completion events (%s: %s)", batch, type(e).__name__, e)
        return []


# ------------------------------------------------------------------------------------------- readers
def decode_entry(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    """A stream entry as one JSON object: the event (``data``) with its ``stream_id``."""
    def text(v: Any) -> str:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    flat = {text(k): text(v) for k, v in fields.items()}
    try:
        event = json.loads(flat.pop("data"))
    except (KeyError, ValueError):  # not written by docqueue: shown as its flat fields
        event = dict(flat)
    return {"stream_id": text(entry_id), **event}


def read(client: RedisClient, *, after: str = "0", page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every entry after stream id ``after`` (``0``: from the oldest kept), oldest first."""
    start = f"({after}" if after not in ("0", "-") else "-"
    while True:
        entries = client.xrange(STREAM, min=start, max="+", count=page)
        for entry_id, fields in entries:
            yield decode_entry(entry_id, fields)
        if len(entries) < page:
            return
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def follow(client: RedisClient, *, after: str = "$", block_ms: int = 5000, page: int = 1000
           ) -> Iterator[dict[str, Any] | None]:
    """New entries after ``after`` as they come (XREAD BLOCK); yields None after each quiet
    ``block_ms`` so a caller can stop or check something between entries."""
    last = after
    while True:
        reply = client.xread({STREAM: last}, count=page, block=block_ms)
        if not reply:
            yield None
            continue
        for _stream, entries in reply:
            for entry_id, fields in entries:
                last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                yield decode_entry(entry_id, fields)


def last_id(client: RedisClient) -> str:
    """The id of the newest entry (``0-0`` for an empty stream): where ``--follow`` starts when the
    caller gave no start, so "now" does not move while earlier entries are printed."""
    entries = client.xrevrange(STREAM, max="+", min="-", count=1)
    if not entries:
        return "0-0"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
