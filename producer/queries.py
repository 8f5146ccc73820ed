"""Read-only views of a batch for ``status`` and ``results``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.errors import DocqueueError
from docqueue.models import Batch, Document, Job
from docqueue.schema import JobStatus


class BatchNotFoundError(DocqueueError):
    """No batch with that id in this database (wrong id, or another DATABASE_URL)."""


def batch_counts(engine: Engine, batch_id: str) -> dict[str, Any]:
    """``{"batch", "task", "total", "pending", "queued", "running", "succeeded", "failed"}``."""
    with engine.connect() as conn:
        task = conn.execute(sa.select(col(Batch.task)).where(col(Batch.id) == batch_id)).scalar_one_or_none()
        if task is None:
            raise BatchNotFoundError(f"no batch {batch_id!r} in this database")
        rows = conn.execute(
            sa.select(col(Job.status), sa.func.count()).where(col(Job.batch_id) == batch_id).group_by(col(Job.status))
        ).all()
    counts = {s.value: 0 for s in JobStatus}
    for status, n in rows:
        counts[status] = n
    return {"batch": batch_id, "task": task, "total": sum(counts.values()), **counts}


def iter_results(engine: Engine, batch_id: str, page: int = 1000,
                 positions: tuple[int, int] | None = None, finished_at: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per document of the batch, in submission order, streamed page by page; only those at
    positions ``[start, stop)`` when given (the documents of one inbox file). ``finished_at``: each
    dict also says when its job finished (a datetime, or None)."""
    batch_counts(engine, batch_id)  # raises for an unknown batch
    columns: list[Any] = [Document.id, Document.source, Document.meta, Job.id, Job.status, Job.task, Job.result,
                          Job.error_kind, Job.error_message, Job.model_id, Job.model_revision,
                          Document.source_row, Document.external_id, Document.page_offsets, Job.reused_from,
                          Job.correlation_id, Job.finished_at]
    query = (
        sa.select(*columns)
        .join(Job, col(Job.document_id) == col(Document.id))
        .where(col(Job.batch_id) == batch_id)
        .order_by(col(Document.position))
    )
    if positions is not None:
        query = query.where(col(Document.batch_id) == batch_id, col(Document.position) >= positions[0],
                            col(Document.position) < positions[1])
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=page).execute(query)
        for row in result:
            (doc_id, source, meta, _job_id, status, task, payload, error_kind, error_message,
             model_id, model_revision, source_row, external_id, page_offsets, reused_from, correlation_id,
             finished) = row
            out: dict[str, Any] = {
                "document": source,
                "document_id": doc_id,
                "status": status,
                "task": task,
                "result": payload,
                "error": {"kind": error_kind, "message": error_message} if error_kind else None,
                "model": {"id": model_id, "revision": model_revision} if model_id else None,
            }
            if meta:
                out["metadata"] = meta
            # provenance where the source has it: export row and id, PDF page starts, reuse
            for key, value in (("row", source_row), ("id", external_id), ("page_offsets", page_offsets),
                               ("reused_from", reused_from), ("correlation_id", correlation_id)):
                if value is not None:
                    out[key] = value
            if finished_at:
                out["finished_at"] = finished
            yield out
