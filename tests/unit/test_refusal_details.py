"""Refusals a publisher can read, and credentials nobody else can (issue 23, items 7, 14, 15, 17).

In process, against the session's real Redis and a real HTTP server on 127.0.0.1:

- a webhook URL with ``user:password@`` delivers with Basic auth (it failed with "Name or service
  not known": urllib looked the whole ``user:pw@host`` up as a host name);
- ``docqueue dlq show`` masks a webhook URL's password (it printed it);
- an oversized item, refused before it is parsed, still names its batch and correlation id, in
  the dead letter and in the ``message.rejected`` event (it was stored cut before its headers).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from docqueue import deadletter, rejections
from docqueue.envelope import identify
from docqueue.events import STREAM, decode_entry
from producer.cli import main
from tests.event_checks import validate_event
from tests.integration.test_foreign_publisher import foreign_message
from workers.webhooks import post


@pytest.fixture
def auth_server() -> Iterator[tuple[str, list[str | None]]]:
    """A receiver that answers 204 only with the Basic credentials alice / s@cret:pw."""
    seen: list[str | None] = []
    expected = "Basic " + base64.b64encode(b"alice:s@cret:pw").decode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(self.headers.get("authorization"))
            self.send_response(204 if self.headers.get("authorization") == expected else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_webhook_url_with_credentials_posts_with_basic_auth(auth_server: tuple[str, list[str | None]]) -> None:
    host, seen = auth_server
    assert post(f"http://alice:s%40cret%3Apw@{host}/hook?x=1", b"{}", {"content-type": "application/json"}, 5) is None
    assert seen == ["Basic " + base64.b64encode(b"alice:s@cret:pw").decode()]
    assert post(f"http://alice:wrong@{host}/hook", b"{}", {}, 5) == "HTTP 401 Unauthorized"
    assert post(f"http://{host}/hook", b"{}", {}, 5) == "HTTP 401 Unauthorized" and seen[-1] is None


def test_dlq_show_masks_a_webhook_password(clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    url = "https://hooks:Sup3rSecret@example.invalid/docqueue"
    raw = deadletter.task_raw("docqueue.deliver_webhook", {"url": url, "event": {"id": "e"}}, "t-1")
    entry = deadletter.add(client, raw=raw, queue="webhooks", kind="webhook_failed", reason="3 tries failed",
                           origin=deadletter.ORIGIN_TASK, max_raw_bytes=2**20, max_entries=100)
    env = {"REDIS_URL": clean_redis}
    for args in (("dlq", "show", entry), ("dlq", "show", entry, "--json")):
        out = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False).output
        assert "Sup3rSecret" not in out and "https://hooks:****@example.invalid/docqueue" in out, out
    found = deadletter.get(client, entry)
    assert found is not None and url.encode() in found[1]  # kept whole: a replay still authenticates


def test_an_oversized_item_keeps_its_batch_and_correlation_id(clean_redis: str) -> None:
    kwargs = {"v": 1, "batch": "too-big", "params": {"labels": ["a", "b"]},
              "documents": [{"id": "d", "text": "x" * (3 * 2**20)}]}
    item = foreign_message("docqueue.classify", "classify", kwargs, correlation_id="req-77")
    assert identify(item, parse=False) == identify(item)  # scanned, not parsed: the same answer
    assert identify(item, parse=False).batch == "too-big"
    raw_body = foreign_message("docqueue.classify", "classify", kwargs, correlation_id="req-78", raw_body=True)
    assert (identify(raw_body, parse=False).batch, identify(raw_body, parse=False).correlation_id) == ("too-big",
                                                                                                      "req-78")

    client = redis.Redis.from_url(clean_redis)
    who = identify(item, parse=False)
    refusal = rejections.Refusal(queue="classify", kind="message_too_large", reason=f"{len(item)} bytes",
                                 origin=deadletter.ORIGIN_TRANSPORT, batch=who.batch,
                                 correlation_id=who.correlation_id)
    entry = rejections.record(client, item, refusal, rejections.Limits(max_raw_bytes=1024, max_entries=100,
                                                                         events_maxlen=1000))
    found = deadletter.get(client, entry)
    assert found is not None
    letter, kept = found
    assert (letter.batch, letter.correlation_id, letter.truncated, len(kept)) == ("too-big", "req-77", True, 1024)
    entries: Any = client.xrange(STREAM, "-", "+")
    [event] = [decode_entry(i, f) for i, f in entries]
    event.pop("stream_id")
    validate_event(event)
    assert (event["type"], event["batch"], event["correlation_id"], event["dead_letter"], event["size"]) == (
        "message.rejected", "too-big", "req-77", entry, len(item))
    assert json.loads(json.dumps(event))["kind"] == "message_too_large"
