"""``docqueue.deliver_webhook``: POST one completion event, signed, retried with back-off.

It runs on its own queue (``webhooks``), in a worker started with ``--queues webhooks``: such a
worker loads no model, and a receiver that is slow or down holds only that worker's processes,
never a model worker's. The model workers only enqueue the task (``docqueue.events``).

Each try is one POST with the Standard Webhooks headers (``docqueue.webhooks.headers``; the
``webhook-id`` is the event id, the same on every try, so a receiver drops repeats). A 2xx answer
is success; anything else (another status, a redirect, a timeout, a refused connection) is a
failed try, retried after ``webhook_backoff_s`` x 2^(tries-1), capped at ``webhook_backoff_max_s``,
up to ``webhook_max_tries`` tries. A webhook that fails every try is given up visibly: a
``webhook.failed`` event on the stream (``docqueue events --batch B`` shows it), an error line in the
worker's log, and a dead letter of kind ``webhook_failed`` that ``docqueue dlq replay`` sends again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from celery import Celery, Task

from docqueue import deadletter
from docqueue.events import EventSink, public_url, webhook_failed_event
from docqueue.settings import Settings
from docqueue.webhooks import DELIVER_TASK, WEBHOOK_QUEUE, backoff, headers, parse_secret

log = logging.getLogger(__name__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed try: urllib would turn the POST into a GET without the body (and a
    signed body must reach the URL the batch named, not wherever a receiver points)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@`` part, and the ``Authorization: Basic`` header it stood
    for: urllib would look the whole ``user:pw@host`` up as a host name ("Name or service not
    known"), so a URL with credentials passed the schema and never delivered."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.netloc.rsplit("@", 1)[1]
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    target = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return target, {"authorization": f"Basic {token}"}


def post(url: str, body: bytes, head: dict[str, str], timeout: float) -> str | None:
    """One POST; None on a 2xx answer, else what went wrong in one line."""
    target, auth = basic_auth(url)
    request = urllib.request.Request(target, data=body,
                                     headers={**head, **auth, "user-agent": "docqueue-webhooks/1"}, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, DNS, timeout, bad URL
        reason = getattr(e, "reason", e)
        return f"{type(e).__name__}: {reason}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def register_webhook_task(app: Celery, settings: Settings) -> None:
    """Register ``docqueue.deliver_webhook`` on ``app`` (every worker knows it; only workers that
    consume the ``webhooks`` queue run it)."""

    @app.task(name=DELIVER_TASK, bind=True, acks_late=True, max_retries=None)
    def deliver_webhook(self: Task, url: str, event: dict[str, Any]) -> int:
        tries = self.request.retries + 1
        secret = settings.webhook_secret
        if secret is None:  # the worker's start check refuses the queue without it; a stray one
            error = "DOCQUEUE_WEBHOOK_SECRET is not set on this worker: nothing is sent unsigned"
        else:
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            key = parse_secret(secret.get_secret_value())
            error = post(url, body, headers(key, str(event["id"]), int(time.time()), body),
                         settings.webhook_timeout_s) or ""
            if not error:
                log.info("webhook %s (%s of batch %s) delivered to %s on try %d", event["id"], event.get("type"),
                         event.get("batch"), public_url(url), tries)
                return tries
        if secret is not None and tries < settings.webhook_max_tries:
            delay = backoff(settings, tries)
            log.warning("webhook %s to %s failed on try %d of %d (%s); next try in %.1f s", event["id"],
                        public_url(url), tries, settings.webhook_max_tries, error, delay)
            raise self.retry(countdown=delay, max_retries=settings.webhook_max_tries)
        _give_up(self, settings, url, event, tries, error)
        return 0


def _give_up(task: Task, settings: Settings, url: str, event: dict[str, Any], tries: int, error: str) -> None:
    log.error("webhook %s (%s of batch %s) to %s given up after %d tr%s: %s", event.get("id"), event.get("type"),
              event.get("batch"), public_url(url), tries, "y" if tries == 1 else "ies", error)
    sink = EventSink(task.app, settings)
    try:
        with sink.client() as client:
            sink.publish([webhook_failed_event(event, url, tries, error)], client)
            deadletter.add(
                client, raw=deadletter.task_raw(task.name, {"url": url, "event": event}, str(task.request.id)),
                queue=WEBHOOK_QUEUE, kind="webhook_failed",
                reason=f"{event.get('type')} of batch {event.get('batch')} to {public_url(url)}: {tries} "
                f"tries failed, last: {error}", origin=deadletter.ORIGIN_TASK,
                max_raw_bytes=settings.dlq_max_raw_bytes, max_entries=settings.dlq_max_entries,
                worker=f"{task.request.hostname}/{os.getpid()}", task=task.name)
    except Exception:
        log.exception("could not record the failed webhook %s", event.get("id"))
