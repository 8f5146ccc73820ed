"""Job states and the JSON envelope carried on the queue.

The envelope is deliberately small and versioned. It is what a Java or Node program publishes to
integrate without our code (see README, "Publishing from another language"). Two forms:

* ``jobs``: ids of jobs the docqueue producer already stored in the database;
* ``documents``: inline documents (``{"id": ..., "text": ...}``) from an external system; the worker
  stores them itself under ids derived from (batch, id), so a re-delivered message is idempotent.
"""

from __future__ import annotations

import enum
import os
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docqueue.errors import MessageError

ENVELOPE_VERSION = 1

_MASK_48 = (1 << 48) - 1
_MASK_62 = (1 << 62) - 1
_UUID7_BITS = 0x7 << 76 | 0b10 << 62  # version 7, RFC 9562 variant
# Fixed namespace so that the same (batch, external id) always maps to the same document/job id.
_ID_NAMESPACE = uuid.UUID("6f1c7d0e-2f44-4b53-9a8e-5c3f1b7d9a21")


class JobStatus(str, enum.Enum):
    """Life cycle of one job. Stored as the plain string in the database."""

    #: stored, its message not yet confirmed published (submit's outbox); ``docqueue retry`` sends it
    pending = "pending"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed)


class InlineDocument(BaseModel):
    """A document carried inside a message by an external publisher."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskMessage(BaseModel):
    """The kwargs of every docqueue task message (JSON only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = ENVELOPE_VERSION
    batch: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    jobs: tuple[str, ...] = ()
    documents: tuple[InlineDocument, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> TaskMessage:
        if self.v != ENVELOPE_VERSION:
            raise ValueError(f"unsupported envelope version {self.v} (this worker speaks {ENVELOPE_VERSION})")
        if bool(self.jobs) == bool(self.documents):
            raise ValueError("a message carries either 'jobs' or 'documents' (exactly one, non-empty)")
        if self.documents and not self.batch:
            raise ValueError("a message with inline 'documents' needs a 'batch' id")
        return self

    @classmethod
    def decode(cls, kwargs: dict[str, Any]) -> TaskMessage:
        """Validate a received message; one clear error for anything malformed."""
        try:
            return cls.model_validate(kwargs)
        except ValidationError as e:
            raise MessageError(f"invalid docqueue message: {e}") from e


def new_id() -> str:
    """A new id for batches, documents and jobs: a UUIDv7 (RFC 9562) as 32 hex chars.

    Time-ordered ids are appended at the right edge of every primary-key and foreign-key index,
    so storing a chunk of documents touches a few index pages instead of pages all over the
    B-tree (random uuid4 keys made each SQLite commit rewrite most of the index as it grew).
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 74 of these 80 bits are used: rand_a 12, rand_b 62
    value = (millis & _MASK_48) << 80 | (rand >> 68) << 64 | (rand & _MASK_62)
    return f"{value | _UUID7_BITS:032x}"


def derived_id(*parts: str) -> str:
    """A stable id from its parts: the same inputs always give the same id (idempotent inserts)."""
    return uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)).hex
