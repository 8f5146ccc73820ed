"""``docqueue events``: read the completion events stream (``docqueue.events``), optionally following it."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from docqueue import events as ev
from docqueue.broker import redis_client
from producer.context import Context, json_option, pass_ctx

_STREAM_ID = re.compile(r"^(\d+)(-\d+)?$")
#: Milliseconds one XREAD waits for new entries while following (between two checks for Ctrl-C).
BLOCK_MS = 2000


def _check_since(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.strip()
    if value in ("0", "$") or _STREAM_ID.match(value):
        return value
    raise click.BadParameter(f"{value!r}: give a stream id (1764745200000-0, or its milliseconds), 0 for the "
                             "oldest kept or $ for only new events", ctx=ctx, param=param)


def _line(event: dict[str, Any]) -> str:
    """One event as a human line: when, what, of which batch, and the outcome."""
    kind = event.get("type", "?")
    head = f"{event.get('stream_id', '')}  {event.get('timestamp', '')}  {kind:<17}  {event.get('batch', '')}"
    if kind == ev.DOCUMENT_FINISHED:
        error = event.get("error") or {}
        tail = f"{event.get('document')}  {event.get('status')}"
        if event.get("external_id") and event.get("external_id") != event.get("document"):
            tail += f"  id={event['external_id']}"
        if error:
            tail += f"  {error.get('kind') or ''}: {error.get('message') or ''}"
        return f"{head}  {tail}"
    if kind == ev.BATCH_FINISHED:
        counts = event.get("counts") or {}
        return f"{head}  {event.get('state')}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + \
            f" of {event.get('total')}"
    if kind == ev.WEBHOOK_FAILED:
        return (f"{head}  {event.get('event_type')} {event.get('event_id')} to {event.get('url')}: "
                f"{event.get('attempts')} tries, last: {event.get('error')}")
    if kind == ev.TRAIN_PROGRESS:
        loss = f"  loss {event['loss']}" if event.get("loss") is not None else ""
        return f"{head}  {event.get('stage')} {event.get('done')}/{event.get('total')}{loss}"
    return head


@click.command("events")
@click.option("--batch", default=None, envvar="DOCQUEUE_EVENTS_BATCH", show_envvar=True,
              help="Only the events of this batch.")
@click.option("--type", "types", multiple=True, type=click.Choice(ev.EVENT_TYPES), envvar="DOCQUEUE_EVENTS_TYPE",
              show_envvar=True, help="Only events of this type (repeatable).")
@click.option("--since", default="0", callback=_check_since, envvar="DOCQUEUE_EVENTS_SINCE", show_envvar=True,
              help="Start after this stream id (0: the oldest kept; $: only events from now on).")
@click.option("--follow", "-f", is_flag=True, envvar="DOCQUEUE_EVENTS_FOLLOW", show_envvar=True,
              help="Keep reading: print new events as they come (Ctrl-C stops).")
@click.option("--until-finished", is_flag=True, envvar="DOCQUEUE_EVENTS_UNTIL_FINISHED", show_envvar=True,
              help="With --batch: stop after that batch's batch.finished event (at once if it is already there).")
@json_option("Machine-readable output on stdout: one event per line, with its stream_id.")
@pass_ctx
def events(obj: Context, batch: str | None, types: tuple[str, ...], since: str, follow: bool,
           until_finished: bool, as_json: bool) -> None:
    """Completion events (document.finished, batch.finished, webhook.failed) and training progress
    (train.progress) from the Redis stream
    docqueue:events, oldest first; the stream keeps the newest DOCQUEUE_EVENTS_MAXLEN."""
    if until_finished and not batch:
        raise click.UsageError("--until-finished needs --batch")
    timeout = obj.settings.broker_connect_timeout_s
    client = redis_client(obj.broker_url, timeout=timeout + BLOCK_MS / 1000 if follow else timeout)

    def wanted(event: dict[str, Any]) -> bool:
        return (batch is None or event.get("batch") == batch) and (not types or event.get("type") in types)

    def show(event: dict[str, Any]) -> bool:
        """Print it if wanted; True once the batch --until-finished waits for is finished."""
        if wanted(event):
            click.echo(json.dumps(event, ensure_ascii=False) if as_json else _line(event))
        return until_finished and event.get("batch") == batch and event.get("type") == ev.BATCH_FINISHED

    last = ev.last_id(client) if since == "$" else since
    if since != "$":
        for event in ev.read(client, after=since):
            last = event["stream_id"]
            if show(event):
                return
    if not follow:
        return
    try:
        for new in ev.follow(client, after=last, block_ms=BLOCK_MS):
            if new is not None and show(new):
                return
    except KeyboardInterrupt:
        return
