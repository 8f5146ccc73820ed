"""What completion events cost a worker per message: ``record_groups`` (the commit a worker does
anyway) against ``emit_finished`` right after it (read the finished rows back, XADD one entry per
document, look whether the batch finished), for messages of N jobs of one batch on a real database
and Redis. The last message also finishes the batch (batch.finished); the median is of the others.

    python ops/bench/events_overhead.py --redis-url redis://127.0.0.1:6379/14 [--database-url URL]

Writes to the given Redis DB (the stream docqueue:events and batch keys): give it one of its own.
Wall times include waiting for the CPU on a busy machine; the CPU time of this process (not
counting the Redis and PostgreSQL servers) is the steadier figure there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from docqueue.db import ensure_schema, upgrade
from docqueue.events import EventSink, emit_finished
from docqueue.models import utcnow
from docqueue.queue import make_celery
from docqueue.schema import TaskMessage
from docqueue.settings import get_settings
from workers import results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--jobs", type=int, default=128, help="jobs per message (DOCQUEUE_BATCH_MAX_DOCS)")
    parser.add_argument("--messages", type=int, default=40)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade(url)
    engine = ensure_schema(url)
    settings = get_settings(redis_url=args.redis_url, database_url=url)
    sink = EventSink(make_celery(settings, args.redis_url), settings)
    result = {"label": "invoice", "scores": {"invoice": 0.91, "contract": 0.09}}
    record_s, emit_s, emit_cpu = [], [], []
    batch = f"bench-{time.time_ns()}"
    messages = [TaskMessage(batch=batch, params={"labels": ["invoice", "contract"]},
                            documents=tuple({"id": f"d{m}-{i}", "text": f"text {i}"}  # type: ignore[misc]
                                            for i in range(args.jobs)))
                for m in range(args.messages)]
    per_message = results.materialize_inline_many(engine, "classify", messages)  # the whole batch first
    for m, job_ids in enumerate(per_message):
        ids = list(job_ids)
        results.claim(engine, ids, "bench")
        now = utcnow()
        t0 = time.perf_counter()
        results.record_groups(engine, [results.RecordGroup([(j, result) for j in ids], "m", None)], now=now)
        t1, c1 = time.perf_counter(), time.process_time()
        report = emit_finished(sink, engine, finished_at=now, job_ids=ids)
        t2, c2 = time.perf_counter(), time.process_time()
        last = m == args.messages - 1
        assert report.documents == args.jobs and report.batches == ([batch] if last else [])
        if last:
            finish_ms = (t2 - t1) * 1000
        else:
            record_s.append(t1 - t0)
            emit_s.append(t2 - t1)
            emit_cpu.append(c2 - c1)
    rec, emi = statistics.median(record_s) * 1000, statistics.median(emit_s) * 1000
    print(f"{engine.dialect.name}, {args.jobs} jobs per message, median of {args.messages - 1} messages: "
          f"record {rec:.1f} ms, events {emi:.1f} ms ({emi / args.jobs * 1000:.0f} us per document; this "
          f"process's CPU {statistics.median(emit_cpu) * 1000:.1f} ms); "
          f"the message that finished the batch: events {finish_ms:.1f} ms")


if __name__ == "__main__":
    main()
