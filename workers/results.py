"""Claiming jobs and recording their outcomes: the worker's only writes, each one transaction.

Idempotency: a job is claimed only while it is not finished, and an outcome is written only if the
job is still unfinished at that moment. A message delivered twice therefore runs at most the jobs
that have no outcome yet, and never stores a second outcome for a job. The same guards make each
write safe to repeat, which is what :func:`retrying` relies on when the database goes away.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from docqueue.db import insert_ignoring_duplicates
from docqueue.errors import DocumentError
from docqueue.models import Batch, Document, Job, utcnow
from docqueue.params import Limits, ParamsError, parse_params
from docqueue.reuse import ReuseKey, find_reusable, job_fields
from docqueue.schema import UNFINISHED, WAITING, JobStatus, TaskMessage, derived_id
from docqueue.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Pauses between tries of a write while the database is unreachable (the last one repeats).
RETRY_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)


def _connection_lost(e: sa.exc.DBAPIError) -> bool:
    """The database (or the way to it) is away, as opposed to a statement it refused: a restart,
    a failover, a cut connection, SQLite's "database is locked"."""
    return e.connection_invalidated or isinstance(e, (sa.exc.OperationalError, sa.exc.InterfaceError))


def retrying(write: Callable[[], T], *, budget_s: float, what: str) -> T:
    """``write()``, tried again with back-off while the database is unreachable, for up to
    ``budget_s`` seconds; then the error goes up (to Celery's retries of the whole message).

    Retrying here, in place, instead of failing the message matters: a worker whose every write
    fails at once would otherwise race through the queue during a database restart, burning each
    message's few Celery retries in seconds and dropping them, and throw away the engine's work on
    every message it had run. Every write here is idempotent (claim and record are guarded by job
    state, inserts ignore duplicates), so a try whose commit did land is harmless to repeat.
    """
    deadline = time.monotonic() + budget_s
    for attempt in range(1_000_000):
        try:
            return write()
        except sa.exc.DBAPIError as e:
            pause = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
            if not _connection_lost(e) or time.monotonic() + pause > deadline:
                raise
            reason = str(e.orig).splitlines()[0] if e.orig is not None else type(e).__name__
            log.warning("database unreachable while %s (%s); retrying in %.2g s", what, reason, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    text: str
    created_at: datetime | None = None  # stored (and enqueued) at; for the queue-wait metric
    attempts: int = 1  # this claim's attempt number (1: the first time a worker takes it)


def claim(engine: Engine, job_ids: Sequence[str], worker: str, stale_after_s: float | None = None
          ) -> list[ClaimedJob]:
    """Mark the claimable jobs among ``job_ids`` as running here and return their texts.

    Claimable: waiting jobs, and ``running`` jobs whose heartbeat is older than ``stale_after_s``
    (their worker died; its message came back). A running job with a fresh heartbeat belongs to a
    live worker: a duplicate delivery leaves it alone instead of running it twice.
    """
    now = utcnow()
    running = col(Job.status) == JobStatus.running.value
    claimable: sa.ColumnElement[bool]
    if stale_after_s is None:
        claimable = col(Job.status).in_(UNFINISHED)
    else:
        cutoff = now - timedelta(seconds=stale_after_s)
        claimable = sa.or_(col(Job.status).in_(WAITING),
                           sa.and_(running, sa.or_(col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < cutoff)))
    with engine.begin() as conn:
        conn.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), claimable)
            .values(status=JobStatus.running.value, attempts=Job.attempts + 1, started_at=now, heartbeat_at=now,
                    worker=worker)
        )
        rows = conn.execute(
            sa.select(col(Job.id), col(Document.text), col(Job.created_at), col(Job.attempts))
            .join(Document, col(Document.id) == col(Job.document_id))
            .where(col(Job.id).in_(job_ids), running, col(Job.worker) == worker)
        ).all()
    by_id = {row[0]: row for row in rows}
    return [ClaimedJob(j, by_id[j][1], by_id[j][2], by_id[j][3]) for j in job_ids if j in by_id]


def heartbeat(engine: Engine, job_ids: Sequence[str], worker: str) -> int:
    """Refresh the heartbeat of the jobs this worker is still running (the reaper leaves them alone)."""
    with engine.begin() as conn:
        return int(conn.execute(
            sa.update(Job).where(col(Job.id).in_(job_ids), col(Job.status) == JobStatus.running.value,
                                 col(Job.worker) == worker).values(heartbeat_at=utcnow())).rowcount)


def record(engine: Engine, outcomes: Iterable[tuple[str, dict[str, Any] | DocumentError]],
           model_id: str | None, model_revision: str | None) -> int:
    """Store every outcome in one transaction; returns how many jobs were actually updated."""
    return record_groups(engine, [RecordGroup(list(outcomes), model_id, model_revision)])


@dataclass
class RecordGroup:
    """Outcomes produced by one model (a gathered batch may hold several)."""

    outcomes: list[tuple[str, dict[str, Any] | DocumentError]]
    model_id: str | None
    model_revision: str | None


def record_groups(engine: Engine, groups: Sequence[RecordGroup], now: datetime | None = None) -> int:
    """Store the outcomes of every group in one transaction; returns how many jobs were updated.

    Each row is written only if its job is still unfinished, so a duplicate delivery that raced
    this one cannot store a second outcome. Every row written gets ``finished_at = now``: that is how
    the completion events (``docqueue.events``) tell the jobs this call finished from the others.
    """
    now = now or utcnow()
    ok: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for group in groups:
        model = {"mid": group.model_id, "mrev": group.model_revision}
        for job_id, outcome in group.outcomes:
            if isinstance(outcome, DocumentError):
                bad.append({"jid": job_id, "kind": outcome.kind, "msg": outcome.message, **model})
            else:
                ok.append({"jid": job_id, "res": outcome, **model})
    # (no IN here: executemany needs plain bind parameters)
    guard = (col(Job.id) == sa.bindparam("jid"), sa.or_(*(col(Job.status) == s for s in UNFINISHED)))
    common = {"finished_at": now, "model_id": sa.bindparam("mid"), "model_revision": sa.bindparam("mrev")}
    updated = 0
    with engine.begin() as conn:
        if ok:
            stmt = sa.update(Job).where(*guard).values(
                status=JobStatus.succeeded.value, result=sa.bindparam("res"), error_kind=None,
                error_message=None, **common)
            updated += conn.execute(stmt, ok).rowcount
        if bad:
            stmt = sa.update(Job).where(*guard).values(
                status=JobStatus.failed.value, error_kind=sa.bindparam("kind"), result=None,
                error_message=sa.bindparam("msg"), **common)
            updated += conn.execute(stmt, bad).rowcount
    return updated


def _add_new_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert_ignoring_duplicates(conn, table), rows)


def materialize_inline(engine: Engine, task: str, message: TaskMessage, settings: Settings | None = None
                       ) -> tuple[str, ...]:
    """Store the inline documents of an external publisher's message; return their job ids.

    Ids derive from (batch, document id), so a re-delivered message maps onto the same rows.
    """
    return materialize_inline_many(engine, task, [message], settings)[0]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _stored_digests(conn: Connection, doc_ids: Sequence[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for start in range(0, len(doc_ids), 900):  # SQLite's bound-parameter limit
        rows = conn.execute(sa.select(col(Document.id), col(Document.sha256))
                            .where(col(Document.id).in_(doc_ids[start:start + 900])))
        found.update({doc_id: digest for doc_id, digest in rows})
    return found


def _conflict_rows(batch: str, task: str, doc: dict[str, Any], stored: str | None, now: Any,
                   correlation_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A failed ``conflict`` job (and its document row) for an id the batch already holds with other
    text. Its ids derive from the new text's hash, so a re-delivered conflicting message adds nothing."""
    key = (batch, doc["external_id"], task, doc["sha256"])
    doc_id = derived_id("conflict-document", *key)
    reason = (f"document {doc['external_id']!r} is already in batch {batch!r} with a different text "
              f"(sha256 {str(stored)[:12]}..., this one {doc['sha256'][:12]}...); the first text and its "
              "outcome are kept: send changed text under a new document id or in a new batch")
    document = {**doc, "id": doc_id, "text": ""}
    job = {"id": derived_id("conflict-job", *key), "batch_id": batch, "document_id": doc_id, "task": task,
           "status": JobStatus.failed.value, "attempts": 0, "created_at": now, "finished_at": now,
           "error_kind": "conflict", "error_message": reason, "correlation_id": correlation_id,
           "params_hash": None, "reused_from": None, "result": None, "model_id": None, "model_revision": None}
    return document, job


def _valid_params(task: str, params: dict[str, Any], settings: Settings) -> bool:
    """Whether ``params`` would run at all: only then may an earlier result be reused (a message
    with bad params fails every document with ``invalid_params`` instead)."""
    try:
        parse_params(task, params, Limits.of(settings))
    except ParamsError:
        return False
    return True


def materialize_inline_many(engine: Engine, task: str, messages: Sequence[TaskMessage],
                            settings: Settings | None = None, now: datetime | None = None,
                            rejected_ids: list[str] | None = None) -> list[tuple[str, ...]]:
    """:func:`materialize_inline` for several messages in one transaction (a gathered trickle of
    one-document messages pays for one commit, not one each); job ids per message, in order.

    * **Reuse** (with ``settings``, as workers call it): a new document whose text already has a
      succeeded result for this task, parameters and model gets that result at once, as the
      producer does at submit time (``docqueue.reuse``); its job id is still returned, and claiming
      skips it because it is finished.
    * **Idempotency**: the same (batch, id) with the same text maps onto the existing rows (a no-op
      that keeps their outcome). With a *different* text it is a ``conflict``: the first text and
      its outcome stay, and the new one is a failed job of its own saying why. The check runs after
      the insert, inside the transaction, so two workers racing with different texts cannot both win.
    * **Finished at once** (rejected, conflicting and reused documents) get ``finished_at = now``;
      their job ids are appended to ``rejected_ids`` so the caller emits their completion events
      (told apart by that time stamp, as in :func:`record_groups`).
    * A message's ``webhook`` is stored on its batch.
    """
    now = now or utcnow()
    webhooks: dict[str, tuple[str, bool]] = {}
    batches: dict[str, dict[str, Any]] = {}
    entries: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (message index, document, job)
    failed_now: list[tuple[dict[str, Any], dict[str, Any]]] = []  # rejected documents: (document, job)
    for index, message in enumerate(messages):
        assert message.batch is not None  # guaranteed by TaskMessage validation
        batches.setdefault(message.batch, {"id": message.batch, "task": task, "params": message.params,
                                           "model": None, "created_at": now, "webhook_url": None,
                                           "webhook_documents": False})
        if message.webhook:
            webhooks[message.batch] = (message.webhook, message.webhook_documents)
        key = ReuseKey.of(settings, task, message.params) if settings is not None else None
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for position, doc in enumerate(message.documents):
            doc_id = derived_id(message.batch, doc.id)
            job_id = derived_id(message.batch, doc.id, task)  # same rule as message_job_ids
            text = doc.text  # NUL and lone surrogates were refused (invalid_text): kept exactly as sent
            rows.append(({"id": doc_id, "batch_id": message.batch, "position": position, "source": doc.id,
                          "sha256": _sha256(text), "text": text, "meta": doc.metadata, "created_at": now,
                          "external_id": doc.id},
                         {"id": job_id, "batch_id": message.batch, "document_id": doc_id, "task": task,
                          "status": JobStatus.queued.value, "attempts": 0, "created_at": now,
                          "finished_at": None, "error_kind": None, "error_message": None,
                          "correlation_id": message.correlation_id, "params_hash": key.params_hash if key else None,
                          "reused_from": None, "result": None, "model_id": None, "model_revision": None}))
        if key is not None and settings is not None and rows and _valid_params(task, message.params, settings):
            with engine.connect() as conn:
                hits = find_reusable(conn, key, [d["sha256"] for d, _ in rows if d["text"].strip()])
            for document, job in rows:
                hit = hits.get(document["sha256"])
                if hit is not None and hit.job_id != job["id"]:
                    job.update(job_fields(key, hit), status=JobStatus.succeeded.value, finished_at=now)
        entries.extend((index, document, job) for document, job in rows)
        for bad in message.rejected:  # failed at once, so the batch accounts for them too
            rkey = (message.batch, bad.id or f"#{bad.position}", task, bad.kind, bad.fingerprint, str(bad.position))
            doc_id = derived_id("rejected-document", *rkey)
            failed_now.append((
                {"id": doc_id, "batch_id": message.batch, "position": bad.position,
                 "source": bad.id or f"(document #{bad.position} without a usable id)", "sha256": None,
                 "text": "", "meta": {}, "created_at": now, "external_id": bad.id},
                {"id": derived_id("rejected-job", *rkey), "batch_id": message.batch, "document_id": doc_id,
                 "task": task, "status": JobStatus.failed.value, "attempts": 0, "created_at": now,
                 "finished_at": now, "error_kind": bad.kind, "error_message": bad.reason,
                 "correlation_id": message.correlation_id, "params_hash": None, "reused_from": None,
                 "result": None, "model_id": None, "model_revision": None}))
    kept: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    with engine.begin() as conn:
        _add_new_rows(conn, Batch, list(batches.values()))
        for batch_id, (url, per_document) in webhooks.items():  # the last message naming one wins
            conn.execute(sa.update(Batch).where(col(Batch.id) == batch_id)
                         .values(webhook_url=url, webhook_documents=per_document))
        _add_new_rows(conn, Document, _first_per_id([d for _, d, _ in entries]))
        stored = _stored_digests(conn, sorted({d["id"] for _, d, _ in entries}))
        for index, document, job in entries:
            if stored.get(document["id"]) == document["sha256"]:
                kept.append((index, document, job))
            else:
                failed_now.append(_conflict_rows(document["batch_id"], task, document, stored.get(document["id"]),
                                                 now, job["correlation_id"]))
        _add_new_rows(conn, Job, _first_per_id([j for _, _, j in kept]))
        _add_new_rows(conn, Document, _first_per_id([d for d, _ in failed_now]))
        _add_new_rows(conn, Job, _first_per_id([j for _, j in failed_now]))
    if rejected_ids is not None:
        rejected_ids.extend(j["id"] for _, j in failed_now)
        rejected_ids.extend(j["id"] for _, _, j in kept if j["finished_at"] is not None)  # reused
    per_message: list[list[str]] = [[] for _ in messages]
    for index, _, job in kept:
        per_message[index].append(job["id"])
    return [tuple(ids) for ids in per_message]


def _first_per_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per id, the first: when gathered messages repeat a document, the first message's text
    is the one stored, and the others are compared against it (deterministically, on both databases)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["id"], row)
    return list(seen.values())


def fail_unfinished(engine: Engine, job_ids: Sequence[str], kind: str, message: str,
                    now: datetime | None = None) -> int:
    """Give up on jobs that could not be processed, so the batch finishes and says why."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.status).in_(UNFINISHED))
            .values(status=JobStatus.failed.value, error_kind=kind, error_message=message,
                    finished_at=now or utcnow())
        ).rowcount


def message_job_ids(task: str, message: TaskMessage) -> tuple[str, ...]:
    """The job ids a message stands for, in either form, without touching the database."""
    if message.jobs:
        return message.jobs
    assert message.batch is not None
    return tuple(derived_id(message.batch, d.id, task) for d in message.documents)


def missing_jobs(engine: Engine, job_ids: Sequence[str]) -> list[str]:
    """The ids among ``job_ids`` that this database has never seen: a message meant for another
    database (a worker with the wrong DATABASE_URL) must be refused, not acked as done."""
    if not job_ids:
        return []
    with engine.connect() as conn:
        known = set(conn.execute(sa.select(col(Job.id)).where(col(Job.id).in_(job_ids))).scalars())
    return [j for j in job_ids if j not in known]
