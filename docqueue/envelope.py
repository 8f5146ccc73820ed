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
from dataclasses import dataclass
from typing import Any

from docqueue.names import TASK_NAME_PREFIX, TASK_TYPES, task_name

#: Error kinds of messages refused at the queue, each with its one-line meaning (README, contract).
MESSAGE_ERROR_KINDS: dict[str, str] = {
    "message_too_large": "the Redis item is larger than DOCQUEUE_MAX_MESSAGE_BYTES",
    "not_json": "the Redis item, or its body, is not JSON",
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
    except ValueError as e:
        raise PoisonMessage("not_json", f"the message body is not JSON ({e})") from e
    _expect(isinstance(body, list) and len(body) == 3, "invalid_body", "the body must be [args, kwargs, embed]")
    args, kwargs, embed = body
    _expect(args == [], "invalid_body", "docqueue tasks take keyword arguments only: args must be []")
    _expect(isinstance(kwargs, dict), "invalid_body", "kwargs must be a JSON object")
    _expect(embed is None or isinstance(embed, dict), "invalid_body", "embed must be an object or null")
    return envelope


def batch_of(item: bytes | str) -> str | None:
    """The ``batch`` a raw item names, where it can be read at all (for recording a rejection)."""
    try:
        envelope = json.loads(item)
        body = json.loads(_body_text(envelope))
        batch = body[1].get("batch")
    except Exception:
        return None
    return batch if isinstance(batch, str) and batch else None
