"""Checking a raw Redis list item against the documented envelope, before kombu or Celery touch it.

kombu's Redis transport pops an item with BRPOP and hands ``json.loads(item)`` straight to its
consumers: an item that is not JSON, a JSON array, or an object without ``properties.delivery_tag``
raises inside the worker's event loop (the worker exited with status 0 and the item was gone).
Celery then decodes the body and headers later, in several places, each with its own way of
dropping what it does not understand. Checking the whole contract once, where the bytes arrive,
turns every one of those into a :class:`PoisonMessage` with a specific ``kind`` that the transport
dead-letters (``docqueue.deadletter``), and the worker goes on.

The contract checked here is exactly what the README documents for foreign publishers: a JSON
object with ``body`` (base64 of the JSON body when ``properties.body_encoding`` is ``base64``,
else the JSON text itself), ``content-type: application/json``, ``headers.task`` naming the
docqueue task of the queue it was pushed to, ``properties.delivery_tag`` (string) and
``properties.delivery_info`` (object), and a body ``[args, kwargs, embed]`` with empty ``args``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from docqueue.names import TASK_NAME_PREFIX, TASK_TYPES, task_name
from docqueue.storable import MAX_JSON_DEPTH, deep_document_stand_in, json_depth

#: Error kinds of messages refused at the queue, each with its one-line meaning (README, contract).
MESSAGE_ERROR_KINDS: dict[str, str] = {
    "message_too_large": "the Redis item is larger than DOCQUEUE_MAX_MESSAGE_BYTES",
    "not_json": "the Redis item, or its body, is not JSON",
    "too_deeply_nested": f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels outside documents (params), "
                         "or too deeply for JSON to be read at all (a too deep document fails alone)",
    "invalid_envelope": "the item is JSON but not kombu's envelope (object with body, headers, properties)",
    "wrong_content_type": "the body is not application/json (pickle and every other serializer are refused)",
    "invalid_body": "the body is not [args, kwargs, embed] with empty args and an object of kwargs",
    "invalid_headers": "a Celery header has the wrong type (task, id, retries, eta, expires, timelimit)",
    "unknown_task": "headers.task is not the docqueue task of the queue the item was pushed to",
    "invalid_message": "the kwargs do not follow the docqueue message schema (see the validation error)",
    "unknown_jobs": "the message names jobs that are not in this worker's database",
}

JSON_CONTENT_TYPE = "application/json"


@dataclass
class PoisonMessage(Exception):
    """A raw queue item that can never be processed; ``kind`` is one of :data:`MESSAGE_ERROR_KINDS`."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def _expect(condition: bool, kind: str, reason: str) -> None:
    if not condition:
        raise PoisonMessage(kind, reason)


def _body_text(envelope: dict[str, Any]) -> str:
    body = envelope.get("body")
    _expect(isinstance(body, str), "invalid_envelope", "'body' must be a string")
    encoding = envelope["properties"].get("body_encoding")
    if encoding is None or str(encoding).lower() in ("utf-8", "utf8"):
        return str(body)
    _expect(str(encoding).lower() == "base64", "invalid_envelope",
            f"properties.body_encoding must be 'base64' or absent, not {encoding!r}")
    try:
        return base64.b64decode(str(body), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as e:
        raise PoisonMessage("invalid_envelope", f"body is not valid base64 of UTF-8 text ({e})") from e


def _check_headers(headers: Any, queue: str) -> None:
    _expect(isinstance(headers, dict), "invalid_envelope", "'headers' must be an object")
    task = headers.get("task")
    _expect(isinstance(task, str), "unknown_task", "headers.task is missing (Celery protocol 2 is required)")
    expected = task_name(queue) if queue in TASK_TYPES else None
    if expected is not None:
        _expect(task == expected, "unknown_task", f"headers.task {task!r} does not belong on queue {queue!r} "
                f"(expected {expected!r})")
    else:
        _expect(str(task).startswith(TASK_NAME_PREFIX), "unknown_task", f"{task!r} is not a docqueue task")
    _expect(isinstance(headers.get("id"), str) and bool(headers.get("id")), "invalid_headers",
            "headers.id must be a non-empty string")
    retries = headers.get("retries", 0)
    _expect(isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0, "invalid_headers",
            "headers.retries must be a non-negative integer")
    for name in ("eta", "expires"):
        _expect(headers.get(name) is None or isinstance(headers.get(name), str), "invalid_headers",
                f"headers.{name} must be an ISO 8601 string or null")
    limit = headers.get("timelimit")
    if limit is not None:
        _expect(isinstance(limit, list) and len(limit) == 2
                and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in limit),
                "invalid_headers", "headers.timelimit must be [hard, soft] numbers or nulls")


def check_raw(item: bytes | str, queue: str, max_bytes: int) -> dict[str, Any]:
    """The decoded envelope of a raw Redis item, or :class:`PoisonMessage` saying what is wrong."""
    size = len(item)
    _expect(size <= max_bytes, "message_too_large", f"{size} bytes, the limit is {max_bytes}")
    try:
        envelope = json.loads(item)
    except RecursionError as e:
        raise PoisonMessage("too_deeply_nested", "the Redis item nests JSON too deeply to be read") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise PoisonMessage("not_json", f"the Redis item is not JSON ({e})") from e
    _expect(isinstance(envelope, dict), "invalid_envelope",
            f"the Redis item must be a JSON object, not {type(envelope).__name__}")
    properties = envelope.get("properties")
    _expect(isinstance(properties, dict), "invalid_envelope", "'properties' must be an object")
    _expect(isinstance(properties.get("delivery_tag"), str) and bool(properties.get("delivery_tag")),
            "invalid_envelope", "properties.delivery_tag must be a non-empty string")
    _expect(isinstance(properties.get("delivery_info"), dict), "invalid_envelope",
            "properties.delivery_info must be an object")
    content_type = envelope.get("content-type")
    _expect(content_type == JSON_CONTENT_TYPE, "wrong_content_type",
            f"content-type {content_type!r}; docqueue accepts {JSON_CONTENT_TYPE} only")
    _check_headers(envelope.get("headers"), queue)
    try:
        body = json.loads(_body_text(envelope))
    except RecursionError as e:
        raise PoisonMessage("too_deeply_nested", f"the message body nests JSON too deeply to be read (the limit "
                            f"is {MAX_JSON_DEPTH} levels)") from e
    except ValueError as e:
        raise PoisonMessage("not_json", f"the message body is not JSON ({e})") from e
    # Celery pickles the task for a prefork child, recursing once per level: a body nested a few hundred
    # levels deep killed the worker process (and every worker the restored message reached next).
    if json_depth(body) > MAX_JSON_DEPTH and _set_deep_documents_aside(body):
        envelope = _with_body(envelope, body)
    _expect(json_depth(body) <= MAX_JSON_DEPTH, "too_deeply_nested",
            f"the message body nests JSON more than {MAX_JSON_DEPTH} levels deep (params and every other "
            "field but a document's metadata must be flatter)")
    _expect(isinstance(body, list) and len(body) == 3, "invalid_body", "the body must be [args, kwargs, embed]")
    args, kwargs, embed = body
    _expect(args == [], "invalid_body", "docqueue tasks take keyword arguments only: args must be []")
    _expect(isinstance(kwargs, dict), "invalid_body", "kwargs must be a JSON object")
    _expect(embed is None or isinstance(embed, dict), "invalid_body", "embed must be an object or null")
    return envelope


def _set_deep_documents_aside(body: Any) -> bool:
    """Put a stand-in in place of each document of ``body`` nested too deeply (its metadata), so the
    message can go on and that document fail alone (``too_deeply_nested``); whether any was."""
    kwargs = body[1] if isinstance(body, list) and len(body) == 3 else None
    documents = kwargs.get("documents") if isinstance(kwargs, dict) else None
    changed = False
    for position, document in enumerate(documents if isinstance(documents, list) else []):
        stand_in = deep_document_stand_in(document, position)
        if stand_in is not None:
            documents[position] = stand_in  # type: ignore[index]
            changed = True
    return changed


def _with_body(envelope: dict[str, Any], body: Any) -> dict[str, Any]:
    """``envelope`` carrying ``body`` instead, in the body's own encoding: what kombu delivers and keeps
    in ``unacked`` (so a redelivery is the message as changed, and changes nothing more)."""
    text = json.dumps(body)
    encoded = str(envelope["properties"].get("body_encoding") or "").lower() == "base64"
    return {**envelope, "body": base64.b64encode(text.encode()).decode() if encoded else text}


#: ``"batch": "<id>"`` as a JSON member, for items too deep or too large to parse whole. Inside a
#: JSON string the quotes would be escaped (``\\"batch\\"``), so this only matches real members.
_BATCH_MEMBER = re.compile(rb'"batch"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._:-]{0,127})"')
_CORRELATION_MEMBER = re.compile(rb'"correlation_id"\s*:\s*"([^"\\]{1,255})"')
#: How much of an item is scanned for its identity when it cannot be parsed whole.
SCAN_BYTES = 64 * 1024


@dataclass(frozen=True)
class Identity:
    """What a refused item says about itself, where it can be read: its batch and the publisher's
    correlation id, so the refusal reaches the batch and the publisher (``message.rejected``)."""

    batch: str | None = None
    correlation_id: str | None = None
    webhook: Any = None  # the message's own ``webhook`` value, unchecked (only from an item that parses)


def _scan_body(item: bytes, envelope_head: bytes) -> bytes:
    """The first :data:`SCAN_BYTES` of the body, decoded from base64 where it is base64."""
    start = envelope_head.find(b'"body"')
    if start < 0:
        return b""
    quote = envelope_head.find(b'"', envelope_head.find(b":", start) + 1)
    chunk = item[quote + 1:quote + 1 + SCAN_BYTES]
    if b"body_encoding" in item[-SCAN_BYTES:] and b'"base64"' in item[-SCAN_BYTES:]:
        chunk = chunk[:len(chunk) // 4 * 4]
        try:
            return base64.b64decode(chunk)
        except (binascii.Error, ValueError):
            return b""
    return chunk.replace(b'\\"', b'"')


def identify(item: bytes | str, parse: bool = True) -> Identity:
    """The batch and correlation id of a raw item: parsed where it parses (and ``parse``: not for an
    oversized item), else scanned for in its first and last :data:`SCAN_BYTES` (kombu writes the
    body first and the properties last), so an oversized or too deeply nested item still names both."""
    raw = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
    batch: str | None = None
    correlation: str | None = None
    webhook: Any = None
    try:
        if not parse:
            raise ValueError("not parsed")
        envelope = json.loads(raw)
        cid = envelope["properties"].get("correlation_id")
        correlation = cid if isinstance(cid, str) and 0 < len(cid) <= 255 else None
        body = json.loads(_body_text(envelope))
        found = body[1].get("batch")
        batch = found if isinstance(found, str) and found else None
        webhook = body[1].get("webhook")
    except Exception:
        tail = raw[-SCAN_BYTES:]
        match = _CORRELATION_MEMBER.search(tail) or _CORRELATION_MEMBER.search(raw[:SCAN_BYTES])
        correlation = correlation or (match.group(1).decode("utf-8", "replace") if match else None)
        if batch is None:
            head = _scan_body(raw, raw[:SCAN_BYTES])
            hit = _BATCH_MEMBER.search(head)
            batch = hit.group(1).decode() if hit else None
    return Identity(batch=batch, correlation_id=correlation, webhook=webhook)

