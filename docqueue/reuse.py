"""Reusing an earlier result: the same bytes, task, parameters and model do not run the model again.

The key is the document's ``sha256`` (of the source bytes; of the text for an export row), the
task, a hash of the parameters (the model named apart), and the model: the one the submission names
(``params["model"]``, ``params["model_revision"]``) or else the task's configured default
(``DOCQUEUE_<TASK>_MODEL``). A match is an earlier *succeeded* job; its result is copied onto the
new job, which is marked ``reused_from`` the job that really ran the model. One query per chunk of
documents, through the index on ``document.sha256``, keeps a big re-submission cheap.

It lives in the core because both sides reuse: the producer at submit time, the worker for the
inline documents a foreign publisher sends (``workers.results.materialize_inline_many``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import col

from docqueue.models import Document, Job
from docqueue.schema import JobStatus
from docqueue.settings import Settings

#: Parameters that name the model: matched against the model that produced a result instead.
MODEL_PARAMS = ("model", "model_revision")


def params_hash(params: dict[str, Any]) -> str:
    """A stable hash of the task parameters, key order and the model choice left out."""
    key = {k: v for k, v in params.items() if k not in MODEL_PARAMS}
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ReuseKey:
    """Everything but the content that must match for a result to be reused."""

    task: str
    params_hash: str
    model_id: str | None
    model_revision: str | None

    @classmethod
    def of(cls, settings: Settings, task: str, params: dict[str, Any]) -> ReuseKey:
        named = params.get("model")
        model = named or getattr(settings, f"{task}_model", None)
        revision = params.get("model_revision") if named else getattr(settings, f"{task}_model_revision", None)
        return cls(task, params_hash(params), str(model) if model else None, str(revision) if revision else None)


@dataclass(frozen=True)
class Reusable:
    """An earlier outcome to copy: the job that ran the model, its result and model."""

    job_id: str
    result: dict[str, Any]
    model_id: str | None
    model_revision: str | None


def find_reusable(conn: Connection, key: ReuseKey, digests: Collection[str]) -> dict[str, Reusable]:
    """Earlier results for any of ``digests`` under ``key``, by sha256 (one query)."""
    if not digests:
        return {}
    # Only jobs that really ran the model: copies point at them, and matching the copies too would
    # grow the rows read per document with every re-submission.
    query = (
        sa.select(col(Document.sha256), col(Job.id), col(Job.result), col(Job.model_id), col(Job.model_revision))
        .join(Job, col(Job.document_id) == col(Document.id))
        .where(col(Document.sha256).in_(sorted(set(digests))), col(Job.task) == key.task,
               col(Job.params_hash) == key.params_hash, col(Job.status) == JobStatus.succeeded.value,
               col(Job.reused_from).is_(None))
    )
    if key.model_id is not None:
        query = query.where(col(Job.model_id) == key.model_id)
    if key.model_revision is not None:
        query = query.where(col(Job.model_revision) == key.model_revision)
    hits: dict[str, Reusable] = {}
    for digest, job_id, result, model_id, model_revision in conn.execute(query):
        if digest not in hits and result is not None:
            hits[digest] = Reusable(job_id, result, model_id, model_revision)
    return hits


def job_fields(key: ReuseKey, hit: Reusable | None) -> dict[str, Any]:
    """The reuse columns of a new job row (the same keys whether reused or not: bulk inserts need that)."""
    return {
        "params_hash": key.params_hash,
        "reused_from": hit.job_id if hit else None,
        "result": hit.result if hit else None,
        "model_id": hit.model_id if hit else None,
        "model_revision": hit.model_revision if hit else None,
    }
