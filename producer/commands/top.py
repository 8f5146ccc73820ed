"""``docqueue top``: queues, workers, batches in progress and recent failures, live in the terminal.

The data comes from :mod:`producer.queue_stats` (shared with ``docqueue metrics serve``): Redis for
queue depth and worker records, the database for batches and failures. Nothing here talks to a
worker directly, so ``top`` answers at once even while every worker is busy.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from docqueue.broker import redis_client
from producer import queue_stats
from producer.context import Context, json_option, pass_ctx


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class LiveRates:
    """Documents per second of each batch from the change between two refreshes (what is happening
    now), falling back to the batch's average so far on the first view."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def update(self, snap: dict[str, Any]) -> None:
        now = time.monotonic()
        for b in snap["batches"]:
            prev = self._last.get(b["batch"])
            if prev is not None and now > prev[0] and b["done"] >= prev[1]:
                rate = (b["done"] - prev[1]) / (now - prev[0])
                b["rate"] = round(rate, 3)
                b["eta_s"] = round((b["total"] - b["done"]) / rate, 1) if rate > 0 else None
            self._last[b["batch"]] = (now, b["done"])


def render(snap: dict[str, Any]) -> Group:
    queues = Table(title="queues", title_justify="left", expand=True)
    for column in ("queue", "ready", "unacked", "stale"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for q in snap["queues"]:
        queues.add_row(q["queue"], str(q["ready"]), str(q["unacked"]), str(q.get("stale", 0)))

    workers = Table(title=f"workers ({len(snap['workers'])})", title_justify="left", expand=True)
    for column in ("host", "node", "queues", "device", "processes", "resident models", "in flight"):
        workers.add_column(column, overflow="fold")
    for w in snap["workers"]:
        workers.add_row(w["host"], w["node"], ",".join(w["queues"]), w["device"],
                        f"{w['busy_processes']}/{w['processes']} busy", ", ".join(w["resident"]) or "-",
                        str(w["in_flight"]))

    states = ", ".join(f"{k} {v}" for k, v in snap["batch_states"].items())
    batches = Table(title=f"batches in progress (all batches: {states})", title_justify="left", expand=True)
    for column in ("batch", "task", "done/total", "failed", "running", "docs/s", "ETA"):
        batches.add_column(column, overflow="fold")
    for b in snap["batches"]:
        batches.add_row(b["batch"], b["task"], f"{b['done']}/{b['total']}", str(b["failed"]), str(b["running"]),
                        "-" if b["rate"] is None else f"{b['rate']:.1f}", _duration(b["eta_s"]))

    failures = Table(title="recent failures", title_justify="left", expand=True)
    for column in ("finished", "batch", "task", "kind", "message"):
        failures.add_column(column, overflow="fold")
    for f in snap["failures"]:
        failures.add_row((f["finished_at"] or "")[11:19], f["batch"], f["task"], f["kind"], f["message"][:120])
    return Group(queues, workers, batches, failures)


@click.command("top")
@click.option("--once", is_flag=True, envvar="DOCQUEUE_TOP_ONCE", show_envvar=True,
              help="Print one snapshot and exit (for scripts, with --json).")
@json_option("Machine-readable: one JSON snapshot per refresh on stdout (schema in docs/operations/metrics.md).")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, envvar="DOCQUEUE_TOP_INTERVAL",
              show_envvar=True, help="Seconds between refreshes.")
@click.option("--failures", "n_failures", type=click.IntRange(0, 1000), default=10, envvar="DOCQUEUE_TOP_FAILURES",
              show_envvar=True, help="Recent failed jobs shown (from the last 24 hours).")
@click.option("--batches", "n_batches", type=click.IntRange(1, 1000), default=20, envvar="DOCQUEUE_TOP_BATCHES",
              show_envvar=True, help="Batches in progress shown, newest first.")
@pass_ctx
def top(obj: Context, once: bool, as_json: bool, interval: float, n_failures: int, n_batches: int) -> None:
    """Live view of queues (ready, unacked, and stale: ready messages of cancelled or finished batches,
    which workers drop unrun), workers (host, queues, device, resident models, in flight),
    batches in progress (done/total, rate, ETA) and recent failures."""
    client, engine = redis_client(obj.broker_url), obj.engine
    rates = LiveRates()

    def take() -> dict[str, Any]:
        snap = queue_stats.snapshot(client, engine, failures=n_failures, batches=n_batches)
        rates.update(snap)
        return snap

    if as_json:
        while True:
            click.echo(json.dumps(take()))
            if once:
                return
            time.sleep(interval)
    if once:
        Console().print(render(take()))
        return
    try:
        with Live(render(take()), refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(take()))
    except KeyboardInterrupt:
        pass
