"""``docqueue retry BATCH``: send again the messages of a batch's unsent (and unfinished) jobs.

The resume step after a broker failure mid-submit (jobs left ``pending``), or after messages were
lost (a purged queue leaves ``queued`` jobs no message names). Duplicates are harmless: a worker's
claim is idempotent, so a job whose message arrives twice runs once.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import sqlalchemy as sa
from sqlmodel import col

from docqueue.broker import check_broker
from docqueue.models import Batch, Document, Job
from docqueue.schema import JobStatus
from docqueue.secrets import mask_url
from producer.batching import Sized, estimate_tokens
from producer.submit import _enqueue, _mark_queued, _size_cap


@click.command("retry")
@click.argument("batch")
@click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True,
              help="Machine-readable output on stdout.")
@click.pass_obj
def retry(obj: Any, batch: str, as_json: bool) -> None:
    """Re-enqueue a batch's pending and queued jobs (after a broker failure or a purged queue)."""
    engine, settings = obj.engine, obj.settings
    with engine.connect() as conn:
        row = conn.execute(sa.select(col(Batch.task), col(Batch.params)).where(col(Batch.id) == batch)).one_or_none()
        if row is None:
            raise click.ClickException(f"no batch {batch!r} in this database")
        task, params = row
        jobs = conn.execute(
            sa.select(col(Job.id), col(Job.status), col(Document.text))
            .join(Document, col(Document.id) == col(Job.document_id))
            .where(col(Job.batch_id) == batch,
                   col(Job.status).in_((JobStatus.pending.value, JobStatus.queued.value)))
            .order_by(col(Document.position))
        ).all()
    sized = [Sized(job_id, estimate_tokens(text or "", _size_cap(task, settings))) for job_id, _, text in jobs]
    pending = sum(1 for _, status, _ in jobs if status == JobStatus.pending.value)
    try:
        check_broker(obj.broker_url, settings)
        messages = _enqueue(obj.app, task, batch, params or {}, sized, settings) if sized else 0
    except Exception as e:  # the broker is still (or again) unusable: one line, as submit says it
        click.echo(f"docqueue: broker failed, nothing re-enqueued for batch {batch}: {mask_url(str(e))}", err=True)
        sys.exit(4)
    _mark_queued(engine, [s.job_id for s in sized])
    if as_json:
        click.echo(json.dumps({"batch": batch, "pending": pending, "queued": len(sized) - pending,
                               "jobs": len(sized), "messages": messages}))
    else:
        click.echo(f"re-enqueued {len(sized)} jobs of batch {batch} ({pending} pending, "
                   f"{len(sized) - pending} queued) in {messages} messages")
