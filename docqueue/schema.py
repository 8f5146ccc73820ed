"""Job states and the JSON envelope carried on the queue.

The envelope is deliberately small and versioned. It is what a Java or Node program publishes to
integrate without our code (see README, "Publishing from another language"). Two forms:

* ``jobs``: ids of jobs the docqueue producer already stored in the database;
* ``documents``: inline documents (``{"id": ..., "text": ...}``) from an external system; the worker
  stores them itself under ids derived from (batch, id), so a re-delivered message is idempotent.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import time
import uuid
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from docqueue.errors import MessageError
from docqueue.params import Limits, TaskParams, parse_params
from docqueue.storable import deep_document_reason, text_problem, value_problem
from docqueue.webhooks import URL_MAX_LENGTH, check_url

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
    #: Stopped by ``docqueue cancel`` before it finished: workers skip it, its result (if a worker
    #: was running it) is discarded, and reuse never copies from it.
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


#: The stored values of the states a job can still leave: what workers may claim, cancel may stop,
#: and a batch is not finished while any job is in. The one definition (a state added to
#: ``JobStatus`` is unfinished unless ``terminal`` says otherwise).
UNFINISHED: tuple[str, ...] = tuple(s.value for s in JobStatus if not s.terminal)
#: Unfinished and not running: waiting for a worker to claim it (what ``docqueue retry`` re-sends).
WAITING: tuple[str, ...] = tuple(s for s in UNFINISHED if s != JobStatus.running.value)


#: Longest batch id (the same on SQLite and PostgreSQL: columns are this wide, and ids are checked
#: before any row is written) and longest publisher document id.
BATCH_ID_MAX_LENGTH = 128
DOCUMENT_ID_MAX_LENGTH = 512
#: Batch ids appear in commands, file names (outboxes) and URLs: letters, digits and ``._:-``.
BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class InlineDocument(BaseModel):
    """A document carried inside a message by an external publisher."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=DOCUMENT_ID_MAX_LENGTH)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class RejectedDocument(BaseModel):
    """An inline document that cannot run, kept so it still gets an outcome (a failed job) instead of
    taking its whole message down: ``kind`` is ``invalid_document``, ``invalid_text``,
    ``too_deeply_nested`` or ``duplicate_document``."""

    model_config = ConfigDict(frozen=True)

    position: int
    id: str | None
    kind: str
    reason: str
    fingerprint: str  # sha256 of the document as sent: a stable id for one without a usable id


def _validation_summary(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}" for err in e.errors())


def split_documents(raw: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """Valid documents (as given) and rejections, each judged on its own: one bad document of a
    foreign message fails alone (``invalid_document``), and a repeated id fails its repeats
    (``duplicate_document``) instead of silently vanishing."""
    if not isinstance(raw, (list, tuple)):
        return [raw], []  # not a list at all: left to the field's own validation error
    good: list[Any] = []
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, item in enumerate(raw):
        doc_id = item.get("id") if isinstance(item, dict) else None
        doc_id = (doc_id if isinstance(doc_id, str) and 0 < len(doc_id) <= DOCUMENT_ID_MAX_LENGTH
                  and text_problem(doc_id) is None else None)
        fingerprint = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
        too_deep = deep_document_reason(item)
        if too_deep:  # set aside by the transport (docqueue.envelope): it fails alone, the others run
            rejected.append({"position": position, "id": doc_id, "kind": "too_deeply_nested",
                             "reason": f"document #{position}: {too_deep}", "fingerprint": fingerprint})
            continue
        try:
            document = InlineDocument.model_validate(item)
        except ValidationError as e:
            rejected.append({"position": position, "id": doc_id, "kind": "invalid_document",
                             "reason": f"document #{position}: {_validation_summary(e)}", "fingerprint": fingerprint})
            continue
        # NUL and lone surrogates pass JSON and the schema, but no database stores them: the document
        # fails alone, its text is never changed behind the publisher's back
        unstorable = value_problem(document.id, "id") or value_problem(document.metadata, "metadata")
        bad_text = text_problem(document.text)
        if unstorable or bad_text:
            rejected.append({"position": position, "id": doc_id,
                             "kind": "invalid_document" if unstorable else "invalid_text",
                             "reason": f"document #{position}: {unstorable or f'text: {bad_text}'}",
                             "fingerprint": fingerprint})
            continue
        if document.id in seen:
            rejected.append({"position": position, "id": doc_id, "kind": "duplicate_document",
                             "reason": f"document #{position}: id {document.id!r} appears earlier in the same "
                             "message; only the first is processed", "fingerprint": fingerprint})
            continue
        seen.add(document.id)
        good.append(item)
    return good, rejected


class TaskMessage(BaseModel):
    """The kwargs of every docqueue task message (JSON only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = ENVELOPE_VERSION
    batch: str | None = Field(default=None, min_length=1, max_length=BATCH_ID_MAX_LENGTH, pattern=BATCH_ID_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)
    jobs: tuple[str, ...] = ()
    documents: tuple[InlineDocument, ...] = ()
    #: Inline messages only: POST the batch-finished event (and with ``webhook_documents`` each
    #: document's event) to this URL, signed (``docqueue.webhooks``). Stored on the batch; the last
    #: message naming one wins.
    webhook: str | None = Field(default=None, max_length=URL_MAX_LENGTH)
    webhook_documents: bool = False
    #: Documents of ``documents`` that cannot run; filled by validation, never sent by a publisher.
    rejected: tuple[RejectedDocument, ...] = Field(default=(), exclude=True)
    #: The envelope's ``properties.correlation_id``, set by the worker from the delivery (never a
    #: kwarg): kept on the jobs of inline documents so a publisher finds its own request id again.
    correlation_id: str | None = Field(default=None, max_length=255, exclude=True)

    @model_serializer(mode="wrap")
    def _omit_unset_webhook(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Messages without a webhook look exactly as before these fields existed, so workers of the
        # previous release (extra="forbid") still accept what a new producer or reaper sends.
        data: dict[str, Any] = handler(self)
        if data.get("webhook") is None:
            data.pop("webhook", None)
        if not data.get("webhook_documents"):
            data.pop("webhook_documents", None)
        return data

    @field_validator("webhook")
    @classmethod
    def _check_webhook(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @model_validator(mode="before")
    @classmethod
    def _split_documents(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for internal in ("rejected", "correlation_id"):
                if internal in data:
                    raise ValueError(f"{internal!r} is not a message field"
                                     + (" (set properties.correlation_id of the envelope)"
                                        if internal == "correlation_id" else ""))
            if "documents" in data:
                good, rejected = split_documents(data["documents"])
                data = {**data, "documents": good, "rejected": rejected}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> TaskMessage:
        if self.v != ENVELOPE_VERSION:
            raise ValueError(f"unsupported envelope version {self.v} (this worker speaks {ENVELOPE_VERSION})")
        if bool(self.jobs) == bool(self.documents or self.rejected):
            raise ValueError("a message carries either 'jobs' or 'documents' (exactly one, non-empty)")
        if (self.documents or self.rejected) and not self.batch:
            raise ValueError("a message with inline 'documents' needs a 'batch' id")
        unstorable = (value_problem(self.params, "params") or value_problem(list(self.jobs), "jobs")
                      or value_problem(self.webhook or "", "webhook"))
        if unstorable:  # shared by every document of the message: the message is refused whole
            raise ValueError(unstorable)
        if self.jobs and (self.webhook or self.webhook_documents):
            raise ValueError("'webhook' belongs in messages with inline 'documents' (a submitted batch stores "
                             "its webhook in the database)")
        return self

    def typed_params(self, task: str, limits: Limits | None = None) -> TaskParams:
        """``params`` as ``task``'s model (``docqueue.params``). Kept apart from :meth:`decode` on
        purpose: bad params fail each document of the message (``invalid_params``, recorded against
        the batch), while a message that is not a message at all is dead-lettered whole. Raises
        :class:`docqueue.params.ParamsError`."""
        return parse_params(task, self.params, limits)

    @classmethod
    def decode(cls, kwargs: dict[str, Any], correlation_id: str | None = None) -> TaskMessage:
        """Validate a received message; one clear error for anything malformed. ``correlation_id``
        comes from the envelope (``properties.correlation_id``); one that is not a short string is
        dropped rather than failing a message whose documents are fine."""
        try:
            message = cls.model_validate(kwargs)
        except ValidationError as e:
            raise MessageError(f"invalid docqueue message: {e}") from e
        if isinstance(correlation_id, str) and 0 < len(correlation_id) <= 255 and not text_problem(correlation_id):
            message = message.model_copy(update={"correlation_id": correlation_id})
        return message


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
