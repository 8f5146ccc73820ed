"""``docqueue.Client``: submit, watch and manage batches from Python (docs/integration/python-client.md).

The CLI's operations without the CLI: a Python service submits files or inline documents with any
task's params, polls or waits, iterates results and completion events, cancels and retries, with
typed return values instead of parsed terminal output.

Dependency direction: the core (``docqueue``) must stay importable without the producer's file
loaders (pypdf, python-docx, rich, click), and the producer imports the core, never the reverse at
import time. So this module imports ``producer`` modules *inside* the methods that need them:
reading files and folders is the producer's loaders' job (the same code as ``docqueue submit``, so a
path gives the same documents, errors and reuse from Python as from the shell), and storing plus
enqueueing a batch is the producer's one submission path. ``import docqueue`` stays light; the
producer is loaded on the first ``submit``, ``cancel`` or ``retry``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docqueue import events as ev
from docqueue.broker import check_broker
from docqueue.errors import DocqueueError
from docqueue.names import TASK_TYPES
from docqueue.params import Limits as ParamLimits
from docqueue.params import ParamsError, parse_params
from docqueue.resources import Resources
from docqueue.schema import JobStatus
from docqueue.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Seconds between two status polls of :meth:`Client.wait`.
WAIT_POLL_S = 0.3


class BatchFailedToFinish(DocqueueError, TimeoutError):
    """:meth:`Client.wait` gave up: the batch was still unfinished after the timeout."""

    def __init__(self, status: BatchStatus, timeout: float) -> None:
        super().__init__(f"batch {status.batch}: {status.unfinished} of {status.total} documents unfinished "
                         f"after {timeout:g}s")
        self.status = status


@dataclass(frozen=True)
class Document:
    """An inline document: ``id`` is yours (it comes back in results as ``id``), ``metadata`` too."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def chat(cls, id: str, body: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> Document:
        """A ``generate`` request: ``body`` as an OpenAI Batch API line's body (``messages``,
        ``max_tokens``, ...), checked here (``ValueError``) and carried as the document's text."""
        from docqueue.chat import parse_request
        from docqueue.errors import DocumentError

        try:
            request = parse_request(json.dumps(dict(body)))
        except (DocumentError, TypeError) as e:
            raise ValueError(f"request {id!r}: {e}") from None
        return cls(id=id, text=request.text(), metadata=dict(metadata or {}))


@dataclass(frozen=True)
class Submission:
    """What :meth:`Client.submit` stored and enqueued."""

    batch: str
    task: str
    documents: int  # documents stored (every input, readable or not)
    unreadable: int  # failed while being read (their jobs are failed already)
    reused: int  # got an earlier result for the same content, task and params at once
    messages: int  # queue messages published


@dataclass(frozen=True)
class BatchStatus:
    """Documents of a batch per state, and messages of it that workers refused (dead letters)."""

    batch: str
    task: str
    total: int
    pending: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    rejected: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def unfinished(self) -> int:
        return self.total - self.finished

    @property
    def done(self) -> bool:
        """Every document has its outcome (result, error or cancellation)."""
        return self.finished >= self.total


@dataclass(frozen=True)
class Result:
    """One document's outcome, in submission order (the rows of ``docqueue results``)."""

    document: str  # its source: a path (``file#row`` for exports) or the inline id
    document_id: str
    status: str  # succeeded, failed, cancelled, or still pending/queued/running
    task: str
    result: dict[str, Any] | None
    error_kind: str | None
    error_message: str | None
    model: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # your id: an inline document's, or an export row's --id-field
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole row (page offsets, reuse...)


@dataclass(frozen=True)
class Retried:
    """What :meth:`Client.retry` re-enqueued."""

    batch: str
    jobs: int
    reopened: int  # failed or cancelled jobs put back
    skipped: int  # failed while being read: not run again (submit the fixed file)
    messages: int


class Client(Resources):
    """One connection to a docqueue deployment: its Redis broker and its results database.

    Settings come from the same place as the CLI's (``DOCQUEUE_*``, ``REDIS_URL``, ``DATABASE_URL``,
    a ``.env`` file); keyword arguments override them (``Client(redis_url=..., database_url=...)``).
    Resources are made on first use; :meth:`close` (or ``with Client() as c:``) releases them.
    """

    def __init__(self, *, redis_url: str | None = None, database_url: str | None = None,
                 settings: Settings | None = None, **overrides: Any) -> None:
        given = {k: v for k, v in {"redis_url": redis_url, "database_url": database_url, **overrides}.items()
                 if v is not None}
        self._settings = settings.model_copy(update=given) if settings is not None else get_settings(**given)

    @property
    def settings(self) -> Settings:
        return self._settings

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ submit
    def submit(self, task: str, paths: Iterable[str | os.PathLike[str]] = (), *,
               documents: Iterable[Document | Mapping[str, Any]] = (), params: Mapping[str, Any] | None = None,
               batch_id: str | None = None, force: bool = False, webhook_url: str | None = None,
               webhook_documents: bool = False, include: Iterable[str] = (), exclude: Iterable[str] = (),
               hidden: bool = False, text_field: str = "text", id_field: str | None = None,
               **task_params: Any) -> Submission:
        """Store one batch of ``task`` jobs and enqueue them; returns at once (see :meth:`wait`).

        ``paths``: files, folders and globs, read exactly as ``docqueue submit`` reads them (a file
        that cannot be read is a failed job with its reason). ``documents``: inline
        :class:`Document` s (or ``{"id", "text", "metadata"}`` mappings). Both may be given.
        Task parameters come as ``params`` or keyword arguments (``labels=[...]``, ``to="de"``);
        an unknown name raises ``ValueError`` here rather than failing every document later.
        """
        from producer.loaders import LoadedDocument, LoadOptions, iter_task_documents
        from producer.loaders.base import Limits
        from producer.submit import submit_batch

        if task not in TASK_TYPES:
            raise ValueError(f"unknown task {task!r}; one of {', '.join(TASK_TYPES)}")
        merged = {**(params or {}), **task_params}
        try:  # the same params model the CLI and the worker apply (docqueue.params)
            merged = parse_params(task, merged, ParamLimits.of(self.settings)).wire()
        except ParamsError as e:
            raise ValueError(f"invalid params for {task}: {e}") from None
        inline = [_inline(d) for d in documents]
        path_list = [os.fspath(p) for p in paths]
        if not inline and not path_list:
            raise ValueError("nothing to submit: give paths or documents")
        s = self.settings  # this client's limits, not the environment's
        options = LoadOptions(include=tuple(include), exclude=tuple(exclude), hidden=hidden,
                              text_field=text_field, id_field=id_field,
                              limits=Limits(s.max_file_bytes, s.max_document_chars, s.max_expanded_bytes,
                                            s.parse_timeout_s, s.parse_memory_mb))
        loaded: Iterable[Any] = iter_task_documents(task, path_list, options) if path_list else ()

        def everything() -> Iterator[Any]:
            yield from loaded
            for doc in inline:
                yield LoadedDocument(source=doc.id, text=doc.text, external_id=doc.id, meta=dict(doc.metadata),
                                     sha256=hashlib.sha256(doc.text.encode("utf-8")).hexdigest())

        check_broker(self.broker_url, self.settings)  # before any row is written
        report = submit_batch(settings=self.settings, engine=self.engine, app=self.app, task=task,
                              documents=everything(), params=merged, force=force, batch_id=batch_id,
                              chunk_size=self.settings.submit_chunk_size, webhook_url=webhook_url,
                              webhook_documents=webhook_documents,
                              events=ev.EventSink(self.app, self.settings, redis=self.redis()))
        return Submission(batch=report.batch_id, task=task, documents=report.documents, unreadable=report.failed,
                          reused=report.reused, messages=report.messages)

    # ------------------------------------------------------------------ watch
    def status(self, batch: str) -> BatchStatus:
        """Counts of the batch's documents per state (raises ``LookupError`` for an unknown batch)."""
        from docqueue import deadletter

        counts = _batch_counts(self.engine, batch)
        try:
            rejected = deadletter.count_for_batch(self.redis(2), batch)
        except Exception:  # the broker is down: the counts still stand
            rejected = 0
        by_state = {s.value: int(counts[s.value]) for s in JobStatus}
        return BatchStatus(batch=batch, task=counts["task"], total=sum(by_state.values()), rejected=rejected,
                           **by_state)

    def wait(self, batch: str, timeout: float | None = None) -> BatchStatus:
        """Poll until every document of ``batch`` has its outcome; raises :class:`BatchFailedToFinish`
        (a ``TimeoutError``) after ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(batch)
            if status.done:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise BatchFailedToFinish(status, timeout or 0.0)
            time.sleep(WAIT_POLL_S)

    def results(self, batch: str) -> Iterator[Result]:
        """Every document's outcome in submission order, streamed from the database page by page."""
        from producer.queries import iter_results

        for row in iter_results(self.engine, batch):
            error = row.get("error") or {}
            model = row.get("model") or {}
            yield Result(document=row["document"], document_id=row["document_id"], status=row["status"],
                         task=row["task"], result=row["result"], error_kind=error.get("kind"),
                         error_message=error.get("message"), model=model.get("id"),
                         metadata=row.get("metadata") or {}, id=row.get("id"), raw=row)

    def events(self, batch: str | None = None, *, types: Iterable[str] = (), since: str = "0",
               follow: bool = False, until_finished: bool = False, block_ms: int = 5000
               ) -> Iterator[dict[str, Any]]:
        """Completion events (``document.finished``, ``batch.finished``, ``webhook.failed``) from the
        Redis stream, oldest first, as dicts with their ``stream_id``; ``follow`` keeps reading new
        ones, ``until_finished`` (with ``batch``) stops after that batch's ``batch.finished``."""
        if until_finished and batch is None:
            raise ValueError("until_finished needs a batch")
        wanted_types = set(types)
        client = self.redis(self.settings.broker_connect_timeout_s + (block_ms / 1000 if follow else 0))

        def wanted(event: dict[str, Any]) -> bool:
            return (batch is None or event.get("batch") == batch) and (not wanted_types
                                                                       or event.get("type") in wanted_types)

        def last(event: dict[str, Any]) -> bool:
            return until_finished and event.get("batch") == batch and event.get("type") == ev.BATCH_FINISHED

        after = ev.last_id(client) if since == "$" else since
        if since != "$":
            for event in ev.read(client, after=since):
                after = event["stream_id"]
                if wanted(event):
                    yield event
                if last(event):
                    return
        if not follow and not until_finished:
            return
        for new in ev.follow(client, after=after, block_ms=block_ms):
            if new is None:
                continue
            if wanted(new):
                yield new
            if last(new):
                return

    # ------------------------------------------------------------------ manage
    def cancel(self, batch: str) -> int:
        """Cancel the batch's unfinished jobs (a running one's outcome is discarded); returns how many."""
        from docqueue.models import utcnow
        from producer.batch_control import cancel_batch

        now = utcnow()
        _batch_counts(self.engine, batch)
        n = cancel_batch(self.engine, batch, now=now)
        if n:
            ev.emit_finished(ev.EventSink(self.app, self.settings, redis=self.redis()), self.engine,
                             finished_at=now, batch=batch)
        return n

    def retry(self, batch: str, *, failed: bool = False, cancelled: bool = False,
              kinds: Iterable[str] = ()) -> Retried:
        """Enqueue the batch's pending and queued jobs again, and with ``failed``, ``cancelled`` or
        ``kinds`` (failed jobs of those error kinds) its finished ones (``docqueue retry``)."""
        import sqlalchemy as sa
        from sqlmodel import col

        from docqueue.models import Batch
        from producer.commands.retry import retry_batch, retryable_kinds

        kinds = tuple(kinds)
        bad = sorted(set(kinds) - set(retryable_kinds()))
        if bad:
            raise ValueError(f"not error kinds docqueue records: {', '.join(bad)}")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(col(Batch.task), col(Batch.params)).where(col(Batch.id) == batch)
                               ).one_or_none()
        if row is None:
            raise LookupError(f"no batch {batch!r} in this database")
        check_broker(self.broker_url, self.settings)
        done = retry_batch(self.engine, self.app, self.settings, batch, row[0], row[1] or {}, failed, cancelled,
                           kinds)
        return Retried(batch=batch, jobs=done.jobs, reopened=done.reopened, skipped=done.skipped,
                       messages=done.messages)


def _inline(doc: Document | Mapping[str, Any]) -> Document:
    if isinstance(doc, Document):
        found = doc
    else:
        unexpected = set(doc) - {"id", "text", "metadata"}
        if unexpected or "id" not in doc or "text" not in doc:
            raise ValueError(f"an inline document is {{id, text[, metadata]}}, not {sorted(doc)}")
        found = Document(id=doc["id"], text=doc["text"], metadata=dict(doc.get("metadata") or {}))
    if not isinstance(found.id, str) or not found.id or not isinstance(found.text, str):
        raise ValueError(f"an inline document needs a non-empty string id and a string text: {found.id!r}")
    return found


def _batch_counts(engine: Engine, batch: str) -> dict[str, Any]:
    """Per-state counts; ``LookupError`` (not the producer's exception) for an unknown batch."""
    import sqlalchemy as sa
    from sqlmodel import col

    from docqueue.models import Batch, Job

    with engine.connect() as conn:
        task = conn.execute(sa.select(col(Batch.task)).where(col(Batch.id) == batch)).scalar_one_or_none()
        if task is None:
            raise LookupError(f"no batch {batch!r} in this database")
        rows = conn.execute(sa.select(col(Job.status), sa.func.count()).where(col(Job.batch_id) == batch)
                            .group_by(col(Job.status))).all()
    counts: dict[str, Any] = {s.value: 0 for s in JobStatus}
    counts.update({status: n for status, n in rows})
    counts["task"] = task
    return counts
