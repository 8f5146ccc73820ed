"""Database tables: batches, their documents, and one job per document.

A job's result lives on the job row itself, so "stored once" is a property of the schema: a
re-delivered job can only update its own row, and the update is conditional on the job not being
finished yet (see ``workers.results``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from docqueue.schema import BATCH_ID_MAX_LENGTH, JobStatus

#: Plain JSON on every database (json, not jsonb, on PostgreSQL: migration 0004): a result reads back
#: with its keys in the order the worker wrote them, the same on SQLite and PostgreSQL. Nothing queries
#: inside these columns, so jsonb's indexing would buy nothing.
JSONType = sa.JSON()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Batch(SQLModel, table=True):
    """One submission: a task type, its parameters, and the documents it covers."""

    id: str = Field(primary_key=True, max_length=BATCH_ID_MAX_LENGTH)
    task: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    model: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    webhook_url: str | None = Field(default=None, max_length=2048,
                                    description="POST the batch-finished event here (docqueue.webhooks).")
    webhook_documents: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                                       server_default=sa.false()),
                                    description="Also POST each document's event to webhook_url.")


class Document(SQLModel, table=True):
    """The text a job runs on, with where it came from."""

    id: str = Field(primary_key=True, max_length=32)
    batch_id: str = Field(foreign_key="batch.id", index=True, max_length=BATCH_ID_MAX_LENGTH)
    position: int = Field(default=0, description="Order of the document within its batch.")
    source: str = Field(max_length=2048, description="Path, URI or external id the text came from.")
    sha256: str | None = Field(default=None, max_length=64, index=True,
                               description="sha256 of the source bytes (of the text, for an export row); "
                               "indexed because re-submissions look earlier results up by it.")
    text: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    source_row: int | None = Field(default=None, description="1-based row (CSV) or line (JSONL) in the source export.")
    external_id: str | None = Field(default=None, max_length=512, description="The row's own id (--id-field).")
    page_offsets: list[int] | None = Field(
        default=None, sa_column=sa.Column(JSONType, nullable=True),
        description="Character offset in ``text`` where each page starts (PDF); maps result offsets to pages.")


class Job(SQLModel, table=True):
    """One task run on one document; holds the outcome."""

    __table_args__ = (sa.Index("ix_job_batch_status", "batch_id", "status"), sa.Index("ix_job_status", "status"))

    id: str = Field(primary_key=True, max_length=32)
    batch_id: str = Field(foreign_key="batch.id", max_length=BATCH_ID_MAX_LENGTH)
    document_id: str = Field(foreign_key="document.id", index=True, max_length=32)
    task: str = Field(max_length=32)
    status: str = Field(default=JobStatus.queued.value, max_length=16)
    attempts: int = Field(default=0)
    error_kind: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = Field(
        default=None, description="Refreshed while a worker runs the job; a stale one means its worker died.")
    worker: str | None = Field(default=None, max_length=255)
    model_id: str | None = Field(default=None, max_length=512)
    model_revision: str | None = Field(default=None, max_length=128)
    result: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType, nullable=True))
    params_hash: str | None = Field(default=None, max_length=64,
                                    description="Hash of the task parameters (model excluded): the reuse key.")
    reused_from: str | None = Field(default=None, max_length=32,
                                    description="Job whose result was copied instead of running the model.")
