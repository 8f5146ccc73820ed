"""``python -m workers``: start a docqueue worker from a command line (``workers.entry`` does the
work; ``docqueue worker`` calls that same function directly, with Click's options)."""

from __future__ import annotations

import argparse
import os
import sys

from docqueue.names import TASK_TYPES
from docqueue.settings import get_settings
from workers.entry import WorkerOptions, run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--queues", "-Q", default=",".join(TASK_TYPES))
    parser.add_argument("--concurrency", "-c", type=int, default=0,
                        help="worker processes; 0: one per usable core on the CPU, one on a GPU")
    parser.add_argument("--pool", "-P", choices=["prefork", "solo"], default="prefork")
    parser.add_argument("--loglevel", "-l", default="info")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics on this port (/metrics) [env DOCQUEUE_METRICS_PORT; "
                        "default: off]")
    parser.add_argument("--uid", default=None, help="drop root privileges to this user once started (Celery's "
                        "--uid) [env DOCQUEUE_WORKER_UID]")
    parser.add_argument("--gid", default=None, help="and to this group [env DOCQUEUE_WORKER_GID]")
    args, celery_args = parser.parse_known_args(argv)
    overrides = {} if args.metrics_port is None else {"metrics_port": args.metrics_port}
    options = WorkerOptions(
        queues=tuple(q.strip() for q in args.queues.split(",") if q.strip()), concurrency=args.concurrency,
        pool=args.pool, loglevel=args.loglevel, uid=args.uid or os.environ.get("DOCQUEUE_WORKER_UID"),
        gid=args.gid or os.environ.get("DOCQUEUE_WORKER_GID"), celery_args=tuple(celery_args))
    return run_worker(get_settings(**overrides), options)


if __name__ == "__main__":
    sys.exit(main())
