"""``docqueue dlq``: the messages workers refused (``docqueue.deadletter``), to look at, replay
after a fix, or purge."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from docqueue import deadletter
from docqueue.broker import redis_client
from docqueue.secrets import mask_url
from producer.context import Context, json_option, pass_ctx
from producer.render import id_column, plural


def _client(obj: Context) -> Any:
    return redis_client(obj.broker_url)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: messages a worker refused (not JSON, wrong shape, pickle, too large, invalid kwargs,
    jobs of another database), with the reason."""


@dlq_group.command("list")
@click.option("--batch", envvar="DOCQUEUE_DLQ_BATCH", show_envvar=True, default=None,
              help="Only the dead letters naming this batch.")
@click.option("--limit", type=click.IntRange(1), envvar="DOCQUEUE_DLQ_LIMIT", show_envvar=True, default=None,
              help="At most this many, oldest first [default: all].")
@json_option()
@pass_ctx
def dlq_list(obj: Context, batch: str | None, limit: int | None, as_json: bool) -> None:
    """Dead letters, oldest first: id, time, queue, kind, reason, batch."""
    found = list(deadletter.entries(_client(obj), batch=batch, limit=limit))
    if as_json:
        for entry in found:
            click.echo(json.dumps(entry.as_json(), ensure_ascii=False))
        return
    table = Table(title=plural(len(found), "dead letter"), box=box.SIMPLE_HEAD)
    # the batch goes under the entry's id: two unwrapped ids side by side do not fit 80 columns
    cells = [e.id + (f"\nbatch {e.batch}" if e.batch else "") for e in found]
    id_column(table, "id / batch", [line for cell in cells for line in cell.splitlines()])
    for column in ("received", "queue", "kind", "reason"):
        table.add_column(column, overflow="fold")
    for e, cell in zip(found, cells, strict=True):
        table.add_row(cell, _when(e.received_at), e.queue, e.kind, e.reason)
    Console().print(table)


@dlq_group.command("show")
@click.argument("entry_id")
@json_option()
@pass_ctx
def dlq_show(obj: Context, entry_id: str, as_json: bool) -> None:
    """One dead letter with its raw bytes (as text; cut at DOCQUEUE_DLQ_MAX_RAW_BYTES; URL passwords
    shown as ****)."""
    found = deadletter.get(_client(obj), entry_id)
    if found is None:
        raise click.ClickException(f"no dead letter {entry_id!r}")
    entry, raw = found
    # a refused webhook delivery (or inline message) holds its URL, password included: shown masked,
    # kept whole in Redis so that a replay still authenticates
    text = mask_url(raw.decode("utf-8", "replace"))
    if as_json:
        click.echo(json.dumps({**entry.as_json(), "raw": text}, ensure_ascii=False))
        return
    for key, value in entry.as_json().items():
        click.echo(f"{key}: {_when(value) if key == 'received_at' else value}")
    click.echo("raw:")
    click.echo(text)


def _replay_one(obj: Context, client: Any, entry_id: str) -> str:
    found = deadletter.get(client, entry_id)
    if found is None:
        raise click.ClickException(f"no dead letter {entry_id!r}")
    entry, raw = found
    if entry.truncated:
        raise click.ClickException(f"dead letter {entry_id} was cut at {len(raw)} of {entry.size} bytes; "
                                   "it cannot be replayed")
    if entry.origin == deadletter.ORIGIN_TASK:
        refused = json.loads(raw)
        obj.app.send_task(refused["task"], kwargs=refused["kwargs"], queue=entry.queue)
    else:
        client.lpush(entry.queue, raw)  # exactly the bytes that arrived, checked again on arrival
    deadletter.delete(client, entry_id)
    return entry.queue


@dlq_group.command("replay")
@click.argument("entry_id", required=False)
@click.option("--all", "replay_all", is_flag=True, envvar="DOCQUEUE_DLQ_REPLAY_ALL", show_envvar=True,
              help="Replay every dead letter (of --batch, if given).")
@click.option("--batch", default=None, envvar="DOCQUEUE_DLQ_BATCH", show_envvar=True,
              help="With --all: only the dead letters naming this batch.")
@json_option()
@pass_ctx
def dlq_replay(obj: Context, entry_id: str | None, replay_all: bool, batch: str | None, as_json: bool) -> None:
    """Publish dead letters again (after fixing the worker or its configuration); a message that is
    still wrong comes back as a new dead letter."""
    if bool(entry_id) == replay_all:
        raise click.UsageError("give one dead letter ID or --all")
    client = _client(obj)
    ids = [entry_id] if entry_id else [e.id for e in deadletter.entries(client, batch=batch)]
    replayed = {i: _replay_one(obj, client, i) for i in ids if i}
    if as_json:
        click.echo(json.dumps({"replayed": len(replayed), "ids": list(replayed)}))
    else:
        click.echo(f"replayed {len(replayed)} dead letter(s)")


@dlq_group.command("purge")
@click.option("--yes", is_flag=True, envvar="DOCQUEUE_YES", show_envvar=True, help="Do not ask.")
@json_option()
@pass_ctx
def dlq_purge(obj: Context, yes: bool, as_json: bool) -> None:
    """Delete every dead letter."""
    if not yes and not as_json:
        if not sys.stdin.isatty():  # click.confirm would read EOF and say only "Aborted!"
            raise click.UsageError("no terminal to confirm on: add --yes (DOCQUEUE_YES=1) to delete every dead letter")
        click.confirm("delete every dead letter?", abort=True)
    n = deadletter.purge(_client(obj))
    click.echo(json.dumps({"purged": n}) if as_json else f"purged {n} dead letter(s)")
