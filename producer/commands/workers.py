"""``docqueue workers``: the live workers, their queues, and the queues they refused and why."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from docqueue import presence
from docqueue.broker import redis_client
from producer.context import Context, json_option, pass_ctx
from producer.render import plural


@click.command("workers")
@json_option("Machine-readable output on stdout: a JSON array of worker objects ([] when none runs).")
@pass_ctx
def workers(obj: Context, as_json: bool) -> None:
    """Live workers (each refreshes its record in Redis every 10 s): queues consumed, queues refused
    with the reason (a missing model), device, processes, database."""
    found = sorted(presence.live_workers(redis_client(obj.broker_url)), key=lambda w: w.node)
    if as_json:  # one JSON document, `[]` when none runs (an empty output is not JSON)
        click.echo(json.dumps([w.as_json() for w in found]))
        return
    table = Table(title=plural(len(found), "worker"))
    for column in ("node", "queues", "refused", "device", "processes", "database"):
        table.add_column(column, overflow="fold")
    for w in found:
        table.add_row(w.node, ",".join(w.queues), "; ".join(f"{q}: {r.removeprefix(f'{q}: ')}"
                                                          for q, r in w.refused.items()),
                      w.device, str(w.processes), w.database)
    Console().print(table)
