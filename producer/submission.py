"""One submission, from documents to a stored, enqueued batch: the orchestration that ``docqueue
submit``, scheduled runs and ``docqueue watch`` share.

The caller mints the batch id (``docqueue.schema.new_id``) and hands it in, so every message about
the submission (progress, errors, the schedule run's record) names the same batch without reading
it back from a report. Everything that can go wrong on the way out is turned here, once, into a
:class:`SubmissionFailed` with one line for a person: the broker refused before anything was
stored; the broker failed mid-way (what is stored, how to resume); the database failed (no
document text, no SQL parameters, the resume command). The callers only choose where the line goes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from docqueue.broker import BrokerUnavailableError, check_broker
from docqueue.errors import DocqueueError
from docqueue.events import EventSink
from docqueue.secrets import mask_url
from docqueue.settings import Settings
from producer.loaders import LoadedDocument
from producer.submit import PublishError, SubmitReport, submit_batch

#: Exit status when every document given failed (unreadable, or with ``--wait`` failed in a worker).
EXIT_ALL_FAILED = 1
#: Exit status of ``submit --wait`` when some documents failed and others succeeded.
EXIT_SOME_FAILED = 5
#: Exit status when the broker or the database failed: scripts can tell "retry later" from bad input.
EXIT_UNAVAILABLE = 4


@dataclass(frozen=True)
class SubmitRequest:
    """What to submit, every option explicit (no Click context needed to build or read one)."""

    task: str
    params: dict[str, Any]
    batch_id: str
    force: bool = False
    webhook_url: str | None = None
    webhook_documents: bool = False
    schedule_id: str | None = None


class SubmissionFailed(DocqueueError):
    """The submission stopped. ``str()`` is the one line to show; ``stored`` says how many documents
    of the batch were stored before it stopped (0: nothing was)."""

    def __init__(self, message: str, stored: int = 0, exit_code: int = EXIT_UNAVAILABLE) -> None:
        super().__init__(message)
        self.stored, self.exit_code = stored, exit_code


def database_reason(e: SQLAlchemyError) -> str:
    """The database's own complaint, without the statement or its parameters (which hold the
    documents' text): the driver's exception name and the first line of its message."""
    origin: BaseException = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    text = str(origin).strip().splitlines()[0] if str(origin).strip() else ""
    if not isinstance(origin, DBAPIError) and "[SQL:" in text:
        text = text.split("[SQL:")[0].strip()
    return f"{type(origin).__name__}: {mask_url(text)[:300]}".rstrip(": ")


def ensure_broker(broker_url: str, settings: Settings) -> None:
    """:class:`SubmissionFailed` when the broker cannot be used: checked before anything is read or
    stored, so such a broker leaves no batch behind (and a schedule's files unclaimed)."""
    try:
        check_broker(broker_url, settings)
    except BrokerUnavailableError as e:
        raise SubmissionFailed(f"{e}; nothing was stored") from e


def submit_documents(request: SubmitRequest, documents: Iterable[LoadedDocument], *, settings: Settings,
                     engine: Engine, app: Celery, broker_url: str, events: EventSink | None = None,
                     on_progress: Callable[[SubmitReport], None] | None = None,
                     stored_already: int = 0) -> SubmitReport:
    """Check the broker, then store and enqueue ``documents`` as batch ``request.batch_id``.

    Raises :class:`SubmissionFailed` with the line to show; nothing else escapes for a broker or
    database fault. ``stored_already``: the batch exists with that many documents (a resumed
    schedule run), and ``documents`` are the rest."""
    ensure_broker(broker_url, settings)
    report = SubmitReport(batch_id=request.batch_id, documents=stored_already)

    def progress(r: SubmitReport) -> None:
        report.documents = r.documents  # what is stored so far, for the error line
        if on_progress is not None:
            on_progress(r)

    try:
        return submit_batch(settings=settings, engine=engine, app=app, task=request.task, documents=documents,
                            params=request.params, on_progress=progress, force=request.force,
                            batch_id=request.batch_id, schedule_id=request.schedule_id,
                            chunk_size=settings.submit_chunk_size, webhook_url=request.webhook_url,
                            webhook_documents=request.webhook_documents, events=events,
                            stored_already=stored_already)
    except PublishError as e:
        raise SubmissionFailed(
            f"broker failed after storing {e.report.documents} documents of batch {request.batch_id} "
            f"({e.pending} stored but not enqueued): {e.reason}; resume with: docqueue retry {request.batch_id}",
            stored=e.report.documents) from None
    except SQLAlchemyError as e:
        stored = report.documents
        if stored:
            line = (f"database failed after storing {stored} documents of batch {request.batch_id} (the rest "
                    f"was not stored): {database_reason(e)}; resume the stored ones with: docqueue retry "
                    f"{request.batch_id}, and submit the rest again")
        else:
            line = (f"database failed before any document of batch {request.batch_id} was stored: "
                    f"{database_reason(e)}; nothing was stored, submit again once the database is back")
        raise SubmissionFailed(line, stored=stored) from None
