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


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is UTC-aware on the way in and out, on every database.

    PostgreSQL's ``timestamptz`` answers aware datetimes, SQLite's text answers naive ones; without
    this type every reader had to patch in the zone itself (and one that forgot compared naive with
    aware). Naive values written are taken as UTC, aware ones converted to it.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Batch(SQLModel, table=True):
    """One submission: a task type, its parameters, and the documents it covers."""

    id: str = Field(primary_key=True, max_length=BATCH_ID_MAX_LENGTH)
    task: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    model: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    schedule_id: str | None = Field(
        default=None, max_length=32, index=True,
        description="The schedule whose run made this batch (no foreign key: a removed schedule's batches stay).")
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
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
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
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    heartbeat_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime,
        description="Refreshed while a worker runs the job; a stale one means its worker died.")
    worker: str | None = Field(default=None, max_length=255)
    model_id: str | None = Field(default=None, max_length=512)
    model_revision: str | None = Field(default=None, max_length=128)
    result: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType, nullable=True))
    params_hash: str | None = Field(default=None, max_length=64,
                                    description="Hash of the task parameters (model excluded): the reuse key.")
    reused_from: str | None = Field(default=None, max_length=32,
                                    description="Job whose result was copied instead of running the model.")
    correlation_id: str | None = Field(
        default=None, max_length=255,
        description="properties.correlation_id of the envelope that brought an inline document (migration 0005).")


# ------------------------------------------------------------------------------------------ schedules
class Schedule(SQLModel, table=True):
    """A submission run by ``docqueue beat`` on a cron expression or a fixed interval.

    ``params`` are exactly the params ``submit <task>`` would send; ``load_options`` the source options
    (include/exclude/hidden/text_field/id_field/force). ``cursor_at`` is the latest due time already
    handled (fired, skipped or dropped by the catch-up policy): the beat's only memory, so a beat that
    restarts, or a second beat, knows what is left to do.
    """

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    task: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    sources: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONType, nullable=False))
    load_options: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    cron: str | None = Field(default=None, max_length=128)
    every_s: float | None = None
    timezone: str = Field(default="UTC", max_length=64, description="Zone the cron expression is read in.")
    catch_up: str = Field(default="last", max_length=8, description="none | last | all (misfire policy).")
    overlap: str = Field(default="skip", max_length=8, description="skip | allow (previous batch unfinished).")
    paused: bool = False
    foreground: bool = Field(default=False, description="Run by `docqueue watch`; `docqueue beat` leaves it alone.")
    settle_s: float = Field(default=5.0, description="A file younger than this (mtime) waits for a later run.")
    move_done: str | None = Field(default=None, max_length=2048)
    move_failed: str | None = Field(default=None, max_length=2048)
    outbox: str | None = Field(default=None, max_length=2048)
    webhook_url: str | None = Field(default=None, max_length=2048,
                                    description="Every run's batch POSTs its batch.finished event here (0007).")
    webhook_documents: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                                       server_default=sa.false()))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    cursor_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ScheduleRun(SQLModel, table=True):
    """One due time of a schedule and what came of it. Unique per (schedule, due time): the database's
    own guard that a run is fired once, behind the beats' Redis lock."""

    __tablename__ = "schedule_run"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_run_due"),)

    id: str = Field(primary_key=True, max_length=32)
    schedule_id: str = Field(max_length=32, index=True)
    due_at: datetime = Field(sa_type=UtcDateTime)
    fired_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    trigger: str = Field(max_length=16, description="schedule | catch-up | manual")
    outcome: str = Field(max_length=16, description="running | submitted | skipped | nothing_new | error")
    batch_id: str | None = Field(default=None, max_length=BATCH_ID_MAX_LENGTH)
    documents: int = 0
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class InboxFile(SQLModel, table=True):
    """A file a schedule has taken (path + content), so each new file is processed once; what became
    of it (moved, written to the outbox) once its batch finished."""

    __tablename__ = "inbox_file"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "file_key", name="uq_inbox_file_key"),
                      sa.Index("ix_inbox_file_schedule_state", "schedule_id", "state"))

    id: str = Field(primary_key=True, max_length=32)
    schedule_id: str = Field(max_length=32)
    file_key: str = Field(max_length=64, description="sha256 of path and content sha256: the 'seen' key.")
    path: str = Field(max_length=2048)
    relpath: str = Field(max_length=2048, description="Path under the source folder: names outbox and moved files.")
    sha256: str = Field(max_length=64)
    size: int = 0
    batch_id: str = Field(max_length=BATCH_ID_MAX_LENGTH, index=True)
    first_position: int | None = Field(default=None, description="Position of its first document in the batch.")
    documents: int | None = Field(default=None, description="Documents read from it (an export: one per row).")
    state: str = Field(default="submitted", max_length=16, description="submitted | finishing | done | failed")
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
