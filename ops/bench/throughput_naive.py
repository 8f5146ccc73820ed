"""The naive pattern most Celery + ML projects ship, as the baseline docqueue must beat.

One plain Celery task per document, on the same Redis: the text travels in the message, the model
is cached per worker process (loaded once, after the fork), each task runs the same classify engine
on its one text and writes its result to the same database in its own transaction. Celery's
defaults otherwise (early ack, prefetch multiplier 4), which is the naive pattern at its fastest.

    python ops/bench/throughput_naive.py --queue naive-solo --pool solo            # a worker
    python ops/bench/throughput_naive.py --queue naive-prefork --pool prefork -c 2

Producer side: :func:`enqueue` (one ``apply_async`` per document).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from celery import Celery
from celery.signals import worker_process_init, worker_ready
from sqlmodel import col

from docqueue.db import dispose_after_fork, get_engine
from docqueue.models import Job, utcnow
from docqueue.params import ClassifyParams

TASK = "bench.naive_classify"
_engine: Any = None


def make_app(broker_url: str) -> Celery:
    app = Celery("naive", broker=broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                    worker_send_task_events=False, broker_connection_retry_on_startup=True,
                    worker_proc_alive_timeout=300)

    @app.task(name=TASK)
    def naive_classify(job_id: str, text: str, params: dict[str, Any]) -> None:
        outcome = _model().run([text], ClassifyParams.of(params))[0]
        with get_engine(os.environ["DATABASE_URL"]).begin() as conn:
            conn.execute(sa.update(Job).where(col(Job.id) == job_id).values(
                status="succeeded", result=outcome, finished_at=utcnow()))

    return app


def _model() -> Any:
    global _engine
    if _engine is None:
        from throughput_raw import load_engine

        _engine = load_engine(threads=int(os.environ.get("BENCH_THREADS", "0")) or (os.cpu_count() or 1))
    return _engine


def enqueue(app: Celery, queue: str, jobs: Sequence[tuple[str, str]], params: dict[str, Any]) -> None:
    """One message per document, sent one by one (no pipelining: that is the naive pattern)."""
    with app.producer_or_acquire() as producer:
        for job_id, text in jobs:
            app.send_task(TASK, args=(job_id, text, params), queue=queue, producer=producer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", required=True)
    parser.add_argument("--pool", choices=["solo", "prefork"], required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    args = parser.parse_args()
    processes = args.concurrency if args.pool == "prefork" else 1
    os.environ["BENCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    app = make_app(os.environ["REDIS_URL"])

    @worker_process_init.connect(weak=False)
    def _child_start(**_: Any) -> None:
        dispose_after_fork()
        _model()

    @worker_ready.connect(weak=False)
    def _ready(**_: Any) -> None:
        print(f"{args.queue} ready.", flush=True)  # logging runs at warning level, like a quiet deployment

    if args.pool == "solo":
        _model()
    app.worker_main(["worker", "--queues", args.queue, "--pool", args.pool, "--concurrency", str(processes),
                     "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "--hostname", f"{args.queue}-{os.getpid()}@%h"])


if __name__ == "__main__":
    main()
