"""Checks for completion events and webhooks, written from the contract, not from docqueue's code:
the stream is read with plain redis-py XRANGE, events are validated against
``docqueue/contract/event.schema.json``, and the webhook receiver verifies signatures the way the
Standard Webhooks spec tells a receiver to (it does not call ``docqueue.webhooks``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import redis

SCHEMA_PATH = Path(__file__).parent.parent / "docqueue" / "contract" / "event.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
STREAM = "docqueue:events"
#: A fixed test secret: 32 bytes, as the spec's ``whsec_`` + base64.
SECRET_KEY = bytes(range(1, 33))
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()

_validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
#: The same file's $defs/stream_entry: the flat fields of an entry.
_entry_validator = jsonschema.Draft202012Validator({"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                                                    "$ref": "#/$defs/stream_entry"})


def validate_event(event: dict[str, Any]) -> None:
    _validator.validate(event)


def validate_entry(fields: dict[str, str]) -> None:
    _entry_validator.validate(fields)


def stream(redis_url: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Every entry: (id, flat fields, data parsed), each checked against the schema on the way."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    out = []
    for entry_id, fields in client.xrange(STREAM):
        validate_entry(fields)
        data = json.loads(fields["data"])
        validate_event(data)
        for name in ("v", "id", "type", "timestamp", "batch"):  # the flat copy says what data says
            assert fields[name] == str(data[name]), (name, fields, data)
        out.append((entry_id, fields, data))
    return out


def of_batch(redis_url: str, batch: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [d for _, _, d in stream(redis_url) if d["batch"] == batch and (kind is None or d["type"] == kind)]


def spec_verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver side of Standard Webhooks: key = base64-decode(secret minus ``whsec_``),
    expected = base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)); the header holds
    space-separated ``v1,<sig>`` entries, any of which may match; old timestamps are refused."""
    msg_id, stamp, signatures = (headers.get("webhook-id"), headers.get("webhook-timestamp"),
                                 headers.get("webhook-signature"))
    if not (msg_id and stamp and signatures):
        return False
    if abs(time.time() - int(stamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in signatures.split(" "):
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 (a real HTTP server in a thread). It answers 500 to the first
    ``fail_first`` requests (or to all, ``always_fail``), 401 to a bad signature, 204 otherwise."""

    fail_first: int = 0
    always_fail: bool = False
    secret: str = SECRET
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                head = {k.lower(): v for k, v in self.headers.items()}
                verified = spec_verify(receiver.secret, head, body)
                with receiver._lock:
                    n = len(receiver.deliveries)
                    code = 500 if receiver.always_fail or n < receiver.fail_first else 204 if verified else 401
                    receiver.deliveries.append(Delivery(self.path, head, body, verified, code))
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/docqueue"

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.answered == 204]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
