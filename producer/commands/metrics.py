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
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from docqueue.broker import redis_client
from producer import queue_stats
from producer.context import Context, err_console, pass_ctx

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """``docqueue_queue_messages{queue,state}`` and ``docqueue_batches{state}``, read per scrape.

    A source that fails (Redis or the database down) is left out of that scrape and reported as
    ``docqueue_metrics_source_up{source} 0``, so a dashboard tells "0 messages" from "cannot see
    the queue" (an absent series, unlike a 0, does not scale a queue down).
    """

    def __init__(self, client: Any, engine: Any) -> None:
        self.client, self.engine = client, engine
        self._lock = threading.Lock()  # the HTTP server may run two scrapes at once

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            up = GaugeMetricFamily("docqueue_metrics_source_up", "1 when the source answered this scrape.",
                                   labels=["source"])
            began = time.perf_counter()
            try:
                depths = queue_stats.queue_depths(self.client)
            except Exception:
                log.warning("could not read queue depths from Redis", exc_info=True)
                up.add_metric(["redis"], 0)
            else:
                up.add_metric(["redis"], 1)
                messages = GaugeMetricFamily(
                    "docqueue_queue_messages", "Messages per queue: ready (waiting in the queue's lists, "
                    "every priority) or unacked (delivered to a worker, not yet acknowledged).",
                    labels=["queue", "state"])
                for d in depths:
                    messages.add_metric([d.queue, "ready"], d.ready)
                    messages.add_metric([d.queue, "unacked"], d.unacked)
                yield messages
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
    """Serve docqueue_queue_messages{queue,state} (ready, unacked; every priority list counted) and
    docqueue_batches{state}, computed at scrape time, until stopped."""
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
