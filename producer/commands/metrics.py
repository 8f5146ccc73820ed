"""``docqueue metrics serve``: queue depth and batch states for Prometheus, from the producer side.

Workers export what they do (``workers.metrics``); what is *waiting* belongs to no worker, and an
autoscaler must see it even when no worker runs (scaling from zero). So one small process (no
torch, no models) serves it: every value is read from Redis and the database when Prometheus
scrapes, by a custom collector, so nothing goes stale between scrapes and nothing runs between them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from docqueue import deadletter, loader_counts, presence
from docqueue.broker import redis_client
from docqueue.errors import LOADER_ERROR_KINDS
from docqueue.names import TASK_TYPES, queue_name
from docqueue.webhooks import WEBHOOK_QUEUE
from producer import queue_stats
from producer.context import Context, err_console, pass_ctx

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Queue depth (the ``webhooks`` queue included), live workers per queue, dead letters, loader
    failures and batches by state, read per scrape.

    A source that fails (Redis or the database down) is left out of that scrape and reported as
    ``docqueue_metrics_source_up{source} 0``, so a dashboard tells "0 messages" from "cannot see
    the queue" (an absent series, unlike a 0, does not scale a queue down).
    """

    def __init__(self, client: Any, engine: Any) -> None:
        self.client, self.engine = client, engine
        self._lock = threading.Lock()  # the HTTP server may run two scrapes at once

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            up = GaugeMetricFamily("docqueue_metrics_source_up", "1 when the source answered this scrape.",
                                   labels=["source"])
            began = time.perf_counter()
            try:
                from_redis = list(self._redis_families())
            except Exception:
                log.warning("could not read queue depths from Redis", exc_info=True)
                up.add_metric(["redis"], 0)
            else:
                up.add_metric(["redis"], 1)
                yield from from_redis
            try:
                states = queue_stats.batch_states(self.engine)
            except Exception:
                log.warning("could not count batches in the database", exc_info=True)
                up.add_metric(["database"], 0)
            else:
                up.add_metric(["database"], 1)
                batches = GaugeMetricFamily("docqueue_batches", "Batches by state (derived from their jobs).",
                                            labels=["state"])
                for state, n in sorted(states.items()):
                    batches.add_metric([state], n)
                yield batches
            yield up
            took = GaugeMetricFamily("docqueue_metrics_scrape_seconds", "Seconds this scrape's queries took.")
            took.add_metric([], time.perf_counter() - began)
            yield took


    def _redis_families(self) -> Iterator[Metric]:
        """Everything read from Redis, all or nothing (one failing read leaves the whole source out)."""
        queues = [queue_name(t) for t in TASK_TYPES] + [WEBHOOK_QUEUE]
        messages = GaugeMetricFamily(
            "docqueue_queue_messages", "Messages per queue: ready (waiting in the queue's lists, "
            "every priority) or unacked (delivered to a worker, not yet acknowledged).",
            labels=["queue", "state"])
        for d in queue_stats.queue_depths(self.client, queues):
            messages.add_metric([d.queue, "ready"], d.ready)
            messages.add_metric([d.queue, "unacked"], d.unacked)
        yield messages
        live = presence.live_workers(self.client)
        workers = GaugeMetricFamily(
            "docqueue_workers", "Live workers consuming each queue (from their presence records in Redis; 0 "
            "when none does, so an alert can fire on ready messages nobody will take).", labels=["queue"])
        for q in queues:
            workers.add_metric([q], sum(1 for w in live if q in w.queues))
        yield workers
        dead = GaugeMetricFamily("docqueue_dead_letters", "Refused messages kept in the dead-letter store "
                                 "(docqueue dlq list).")
        dead.add_metric([], int(self.client.zcard(deadletter.INDEX_KEY)))
        yield dead
        counted = loader_counts.counts(self.client)
        loader = CounterMetricFamily(
            "docqueue_loader_failures", "Documents that failed at submit time (the producer could not read "
            "them), by task and error kind; every known kind is present from 0.", labels=["task", "error_kind"])
        tasks = sorted({*TASK_TYPES, *(t for t, _ in counted)})
        kinds = sorted({*LOADER_ERROR_KINDS, *(k for _, k in counted)})
        for task in tasks:
            for kind in kinds:
                loader.add_metric([task, kind], counted.get((task, kind), 0))
        yield loader


def build_registry(client: Any, engine: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(client, engine))
    return registry


@click.group("metrics")
def metrics_group() -> None:
    """Prometheus metrics that belong to no worker (queue depth, batches)."""


@metrics_group.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None, envvar="DOCQUEUE_METRICS_SERVE_PORT",
              show_envvar=True, help="Port to serve /metrics on [default: 9809].")
@click.option("--host", default="0.0.0.0", envvar="DOCQUEUE_METRICS_SERVE_HOST", show_envvar=True,
              help="Address to listen on.")
@pass_ctx
def metrics_serve(obj: Context, port: int | None, host: str) -> None:
    """Serve docqueue_queue_messages{queue,state} (ready, unacked; every priority list counted),
    docqueue_workers{queue}, docqueue_dead_letters, docqueue_loader_failures_total{task,error_kind}
    and docqueue_batches{state}, computed at scrape time, until stopped (docs/operations/metrics.md)."""
    port = port or obj.settings.metrics_serve_port
    registry = build_registry(redis_client(obj.broker_url), obj.engine)
    server, thread = start_http_server(port, addr=host, registry=registry)
    err_console.print(f"docqueue metrics: serving queue depth and batch states on {host}:{port}/metrics")
    try:
        while thread.is_alive():
            thread.join(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
