"""Prometheus metrics of a worker: what its processes did, served by its main process on /metrics.

Prefork children do the work, the main process serves the scrape, so the values live in
prometheus_client's multiprocess mode: every process writes its own memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` and the main process merges them per scrape. That mode is chosen by
prometheus_client when it is first imported, so ``workers.metrics_dir.prepare_multiprocess_dir``
must run before anything imports this module (``python -m workers`` calls it before it imports the
app). Without a metrics port nothing is served and the values stay in each process's memory.

Names follow Prometheus conventions: ``_total`` counters, base units (seconds, bytes), labels with a
small, bounded set of values (task, model, status, error kind, device).
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from docqueue.errors import worker_error_kinds
from docqueue.names import TASK_TYPES
from workers.metrics_dir import MULTIPROC_ENV

log = logging.getLogger(__name__)


DOCUMENTS = Counter(
    "docqueue_documents_total", "Documents a worker finished, by outcome (error_kind is empty on success).",
    ["task", "model", "status", "error_kind"])
BATCH_SIZE = Histogram(
    "docqueue_engine_batch_size", "Documents handed to one engine run (one micro-batch group).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
PADDED_TOKENS = Histogram(
    "docqueue_engine_padded_tokens", "Padded tokens (rows x longest row) of one forward pass.",
    buckets=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768))
BATCH_SECONDS = Histogram(
    "docqueue_engine_batch_seconds", "Seconds one engine run took (the model's share of a message).",
    ["task", "model"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
QUEUE_WAIT = Histogram(
    "docqueue_queue_wait_seconds", "Seconds from a job being stored and enqueued to a worker claiming it "
    "(first claim only: a retried job's wait would count its earlier run).",
    ["task"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600))
MODEL_LOAD = Histogram(
    "docqueue_model_load_seconds", "Seconds loading a model took (once per process and model).",
    ["task", "model"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
RESIDENT = Gauge(
    "docqueue_resident_models", "Engines resident in live worker processes.", ["task"],
    multiprocess_mode="livesum")
GPU_ALLOCATED = Gauge(
    "docqueue_gpu_memory_allocated_bytes", "CUDA memory held by tensors, summed over live worker processes.",
    ["device"], multiprocess_mode="livesum")
GPU_RESERVED = Gauge(
    "docqueue_gpu_memory_reserved_bytes", "CUDA memory reserved by the caching allocator, summed over live "
    "worker processes.", ["device"], multiprocess_mode="livesum")
OUTCOMES = Counter(
    "docqueue_document_outcomes_total", "Documents a worker finished, by outcome, without the model label: every "
    "(task, status, error_kind) series exists at 0 from the worker's start, so increase() sees the first "
    "failure of a kind; use this one for rates and alerts.", ["task", "status", "error_kind"])
RETRIES = Counter(
    "docqueue_job_retries_total", "Jobs claimed again after an earlier attempt (redelivered after a crash, "
    "reaped, or re-queued by docqueue retry).", ["task"])
LATENCY = Histogram(
    "docqueue_job_latency_seconds", "Seconds from a job's submission to its outcome being stored (queue wait, "
    "every attempt and the engine run).",
    ["task"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600))
WORKER_UP = Gauge(
    "docqueue_worker_up", "1 while the worker's main process runs (absent once it is gone: alert on absent() or up).",
    ["queues"], multiprocess_mode="livemax")
TOKENS = Counter(
    "docqueue_tokens_total", "Real (unpadded) input tokens run through the models; rate() gives tokens/s.",
    ["task", "model"])

#: (task, model) of the engine run in progress, for counters observed deep in shared models (one
#: MiniLM serves classify, summarize and review).
_current: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("docqueue_engine", default=("", ""))


@contextmanager
def engine_labels(task: str, model: str) -> Iterator[None]:
    token = _current.set((task, model))
    try:
        yield
    finally:
        _current.reset(token)


def observe_forward(padded_tokens: int, real_tokens: int) -> None:
    """One forward pass: its padded size, and its real tokens for the current task and model."""
    PADDED_TOKENS.observe(padded_tokens)
    task, model = _current.get()
    if task:
        TOKENS.labels(task=task, model=model).inc(real_tokens)


def observe_gpu_memory() -> None:
    """This process's CUDA memory, where it uses CUDA (imports torch only if the worker already did)."""
    import sys

    torch: Any = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    for index in range(torch.cuda.device_count()):
        device = f"cuda:{index}"
        GPU_ALLOCATED.labels(device=device).set(torch.cuda.memory_allocated(index))
        GPU_RESERVED.labels(device=device).set(torch.cuda.memory_reserved(index))


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_dead(pid: int) -> None:
    """Drop a finished process's live gauges (resident models, GPU memory); its counters stay."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)


_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def reap_dead_processes(path: str) -> list[int]:
    """``mark_process_dead`` for processes that died without saying so (a SIGKILLed child never runs
    its shutdown hook): their live gauges would otherwise be summed forever."""
    dead = []
    for name in os.listdir(path):
        m = _LIVE_FILE.match(name)
        if not m:
            continue
        pid = int(m[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(pid)
        except PermissionError:
            continue  # alive, someone else's
    for pid in set(dead):
        multiprocess.mark_process_dead(pid, path)
    return sorted(set(dead))


class _ReapingCollector:
    """The multiprocess collector, after dropping dead processes' live gauges."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.inner = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self) -> Any:
        reap_dead_processes(self.path)
        return self.inner.collect()


def init_series(tasks: Sequence[str], queues: Sequence[str] = ()) -> None:
    """Create every bounded counter series at 0 (and the histograms' buckets) before any work.

    A counter series born at its first increment has no earlier sample, so ``rate()`` and
    ``increase()`` never see that step: the first failures of a kind, or the first batch after a
    start, would read 0. Created here at 0, before the first scrape, every later step is seen.
    """
    for task in tasks:
        OUTCOMES.labels(task=task, status="succeeded", error_kind="")
        for kind in worker_error_kinds():
            OUTCOMES.labels(task=task, status="failed", error_kind=kind)
        RETRIES.labels(task=task)
        LATENCY.labels(task=task)
        QUEUE_WAIT.labels(task=task)
    WORKER_UP.labels(queues=",".join(queues)).set(1)


def count_outcomes(task: str, counts: dict[tuple[str, str], int]) -> None:
    """(status, error_kind) -> documents, for the model-less outcome counter."""
    for (status, kind), n in counts.items():
        OUTCOMES.labels(task=task, status=status, error_kind=kind).inc(n)


_server_lock = threading.Lock()
_server: Any = None


def start_server(port: int, queues: Sequence[str] = ()) -> None:
    """Serve /metrics on ``port`` from this (the main) process: merged over every process in
    multiprocess mode, this process's own registry otherwise (solo pool without the directory).
    The series of every docqueue task (:func:`init_series`) exist at 0 from here on."""
    global _server
    with _server_lock:
        if _server is not None:
            return
        init_series(TASK_TYPES, queues)
        registry: Any
        if multiprocess_enabled():
            registry = CollectorRegistry()
            registry.register(_ReapingCollector(os.environ[MULTIPROC_ENV]))
        else:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        _server = start_http_server(port, registry=registry)
        log.info("docqueue worker: Prometheus metrics on :%d/metrics (multiprocess directory: %s)", port,
                 os.environ.get(MULTIPROC_ENV) or "none, single process")
