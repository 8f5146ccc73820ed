"""Webhooks as the Standard Webhooks spec (standardwebhooks.com) has them: signing and the wire contract.

Delivery itself runs in a worker that consumes the ``webhooks`` queue (``workers.webhooks``): the
model workers only enqueue a ``docqueue.deliver_webhook`` task, so a slow or dead receiver never
holds a process that has a model loaded. This module is shared by both sides and by tests.

Signature (spec, "Signature scheme"): ``base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))`` sent
as ``webhook-signature: v1,<signature>``, where ``key`` is the base64-decoded part of a secret
``whsec_<base64>``, ``id`` the ``webhook-id`` header (the event id: the same on every retry, so a
receiver can drop duplicates) and ``timestamp`` the ``webhook-timestamp`` header (integer Unix
seconds of this attempt, so a receiver can refuse replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from docqueue.names import TASK_NAME_PREFIX

#: Queue and task name of webhook deliveries (a worker started with ``--queues webhooks`` runs them).
WEBHOOK_QUEUE = "webhooks"
DELIVER_TASK = TASK_NAME_PREFIX + "deliver_webhook"
SECRET_PREFIX = "whsec_"
#: Longest webhook URL a batch stores (and an inline message may carry).
URL_MAX_LENGTH = 2048


def parse_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError naming what is wrong."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("DOCQUEUE_WEBHOOK_SECRET must be 'whsec_' followed by base64 (Standard Webhooks format)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"DOCQUEUE_WEBHOOK_SECRET: the part after 'whsec_' is not base64 ({e})") from e
    if len(key) < 24:  # the spec recommends 24 to 64 bytes
        raise ValueError(f"DOCQUEUE_WEBHOOK_SECRET: the key is {len(key)} bytes; use 24 to 64 random bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg_id, timestamp, body), "content-type": "application/json"}


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL docqueue can POST to; ValueError saying why not."""
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValueError(f"webhook URL is longer than {URL_MAX_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be an absolute http:// or https:// URL, not {url!r}")
    return url


def backoff(settings: Any, tries_done: int) -> float:
    """Seconds before the next POST after ``tries_done`` failed ones: base, 2 x base, 4 x base...,
    capped at ``webhook_backoff_max_s``."""
    return float(min(settings.webhook_backoff_max_s, settings.webhook_backoff_s * 2 ** max(0, tries_done - 1)))
