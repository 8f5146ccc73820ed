"""``docqueue retry BATCH``: send again the messages of a batch's unsent (and unfinished) jobs.

The resume step after a broker failure mid-submit (jobs left ``pending``), or after messages were
lost (a purged queue leaves ``queued`` jobs no message names). Duplicates are harmless: a worker's
claim is idempotent, so a job whose message arrives twice runs once.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click
import sqlalchemy as sa
from sqlmodel import col

from docqueue.broker import check_broker
from docqueue.errors import LOADER_ERROR_KINDS, worker_error_kinds
from docqueue.models import Batch, Document, Job
from docqueue.names import queue_name
from docqueue.schema import WAITING, JobStatus
from docqueue.secrets import mask_url
from producer.batching import Sized, estimate_tokens
from producer.context import json_option
from producer.render import plural
from producer.submit import _enqueue, _mark_queued, _size_cap
from producer.worker_check import coverage_warning


def _reopen(engine: Any, batch: str, failed: bool, cancelled: bool, kinds: tuple[str, ...]) -> tuple[int, int]:
    """Put the chosen finished jobs back to ``pending`` (their outcome cleared); returns (reopened,
    skipped). A document that failed while it was being read (attempts 0: not_found, corrupt_pdf...)
    is skipped: running the model again cannot help, submitting the fixed file does."""
    chosen = []
    if failed or kinds:
        rule = col(Job.status) == JobStatus.failed.value
        chosen.append(sa.and_(rule, col(Job.error_kind).in_(kinds)) if kinds else rule)
    if cancelled:
        chosen.append(col(Job.status) == JobStatus.cancelled.value)
    if not chosen:
        return 0, 0
    selected = sa.and_(col(Job.batch_id) == batch, sa.or_(*chosen))
    with engine.begin() as conn:
        skipped = conn.execute(sa.select(sa.func.count()).where(selected, col(Job.attempts) == 0,
                                                                col(Job.status) == JobStatus.failed.value)).scalar()
        reopened = conn.execute(
            sa.update(Job).where(selected, sa.or_(col(Job.attempts) > 0, col(Job.status) != JobStatus.failed.value))
            .values(status=JobStatus.pending.value, error_kind=None, error_message=None, finished_at=None,
                    result=None, model_id=None, model_revision=None)).rowcount
    return int(reopened), int(skipped or 0)


def retryable_kinds() -> tuple[str, ...]:
    """Error kinds a failed job can have: a worker's, ``internal_error`` (a message given up after
    its retries), and the loader's (accepted, but those documents are skipped with a word why)."""
    return tuple(sorted({*worker_error_kinds(), "internal_error", *LOADER_ERROR_KINDS}))


@dataclass(frozen=True)
class RetryReport:
    """What :func:`retry_batch` re-enqueued."""

    batch: str
    jobs: int  # jobs re-enqueued
    pending: int  # of them: never sent before (a broker failure mid-submit)
    reopened: int  # of them: failed or cancelled jobs put back
    skipped: int  # failed while being read: not retried (submit the fixed file)
    messages: int

    @property
    def queued(self) -> int:
        """Of them: sent before but unfinished (a message lost with a purged queue)."""
        return self.jobs - self.pending - self.reopened


def retry_batch(engine: Any, app: Any, settings: Any, batch: str, task: str, params: dict[str, Any],
                failed: bool = False, cancelled: bool = False, kinds: tuple[str, ...] = ()) -> RetryReport:
    """Reopen the chosen finished jobs and enqueue every pending and queued job of ``batch`` again
    (``docqueue retry`` and :meth:`docqueue.Client.retry`). Raises what the broker raises."""
    reopened, skipped = _reopen(engine, batch, failed, cancelled, kinds)
    with engine.connect() as conn:
        jobs = conn.execute(
            sa.select(col(Job.id), col(Job.status), col(Document.text))
            .join(Document, col(Document.id) == col(Job.document_id))
            .where(col(Job.batch_id) == batch,
                   col(Job.status).in_(WAITING))
            .order_by(col(Document.position))
        ).all()
    sized = [Sized(job_id, estimate_tokens(text or "", _size_cap(task, settings))) for job_id, _, text in jobs]
    pending = sum(1 for _, status, _ in jobs if status == JobStatus.pending.value) - reopened
    messages = _enqueue(app, task, batch, params, sized, settings) if sized else 0
    _mark_queued(engine, [s.job_id for s in sized])
    return RetryReport(batch=batch, jobs=len(sized), pending=pending, reopened=reopened, skipped=skipped,
                       messages=messages)


@click.command("retry")
@click.argument("batch")
@click.option("--failed", is_flag=True, envvar="DOCQUEUE_RETRY_FAILED", show_envvar=True,
              help="Also run the jobs that failed in a worker again.")
@click.option("--cancelled", is_flag=True, envvar="DOCQUEUE_RETRY_CANCELLED", show_envvar=True,
              help="Also run the cancelled jobs.")
@click.option("--kind", "kinds", multiple=True, envvar="DOCQUEUE_RETRY_KIND", show_envvar=True,
              help="Also run the failed jobs with this error kind (repeatable; implies --failed for those kinds).")
@json_option()
@click.pass_obj
def retry(obj: Any, batch: str, failed: bool, cancelled: bool, kinds: tuple[str, ...], as_json: bool) -> None:
    """Re-enqueue a batch's pending and queued jobs (after a broker failure or a purged queue), and
    with --failed/--cancelled/--kind its failed or cancelled ones, through the normal batching path."""
    unknown = sorted(set(kinds) - set(retryable_kinds()))
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))}: not an error kind docqueue records; one of "
                                 f"{', '.join(retryable_kinds())}", param_hint="--kind")
    engine, settings = obj.engine, obj.settings
    with engine.connect() as conn:
        row = conn.execute(sa.select(col(Batch.task), col(Batch.params)).where(col(Batch.id) == batch)).one_or_none()
        if row is None:
            raise click.ClickException(f"no batch {batch!r} in this database")
        task, params = row
    try:
        check_broker(obj.broker_url, settings)  # before reopening anything
    except Exception as e:
        click.echo(f"docqueue: broker failed, nothing re-enqueued for batch {batch}: {mask_url(str(e))}", err=True)
        sys.exit(4)
    warning = coverage_warning(obj.broker_url, queue_name(task))
    if warning:  # re-queued for nobody: say so before the jobs wait unseen
        click.echo(f"warning: {warning}; the re-enqueued jobs wait until one does", err=True)
    try:
        done = retry_batch(engine, obj.app, settings, batch, task, params or {}, failed, cancelled, kinds)
    except Exception as e:  # the broker is still (or again) unusable: one line, as submit says it
        click.echo(f"docqueue: broker failed, nothing re-enqueued for batch {batch}: {mask_url(str(e))}", err=True)
        sys.exit(4)
    if as_json:
        click.echo(json.dumps({"batch": batch, "pending": done.pending, "queued": done.queued,
                               "reopened": done.reopened, "skipped_unreadable": done.skipped, "jobs": done.jobs,
                               "messages": done.messages}))
    else:
        click.echo(f"re-enqueued {plural(done.jobs, 'job')} of batch {batch} ({done.pending} pending, "
                   f"{done.queued} queued, {done.reopened} failed/cancelled reopened) in "
                   f"{plural(done.messages, 'message')}"
                   + (f"; {done.skipped} that failed while being read were skipped (submit the fixed files)"
                      if done.skipped else ""))
