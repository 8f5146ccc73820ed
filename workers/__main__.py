"""``python -m workers``: start a docqueue worker (``docqueue worker`` runs this).

Before Celery starts, each requested queue's model is checked; a queue whose model is missing is
dropped with one line saying how to fix it, so the worker never takes jobs it cannot run.
"""

from __future__ import annotations

import argparse
import os
import sys

from docqueue.names import TASK_TYPES
from docqueue.secrets import install_log_masking
from docqueue.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--queues", "-Q", default=",".join(TASK_TYPES))
    parser.add_argument("--concurrency", "-c", type=int, default=0,
                        help="worker processes; 0: one per usable core on the CPU, one on a GPU")
    parser.add_argument("--pool", "-P", choices=["prefork", "solo"], default="prefork")
    parser.add_argument("--loglevel", "-l", default="info")
    args, celery_args = parser.parse_known_args(argv)

    install_log_masking()  # Celery logs broker URLs (with their passwords) on start-up and reconnects
    settings = get_settings()
    from workers.app import PRELOAD_ENV, PROCESSES_ENV, create_app, preload_models
    from workers.registry import unavailable_reason

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    runnable = []
    refused: dict[str, str] = {}
    for queue in queues:
        reason = unavailable_reason(settings, queue)
        if reason:
            print(f"docqueue worker: not consuming {reason}", file=sys.stderr)
            refused[queue] = reason
        else:
            runnable.append(queue)
    if not runnable:
        from workers.app import announce_refusals

        announce_refusals(settings, refused)
        print("docqueue worker: no queue left to consume; exiting", file=sys.stderr)
        return 2

    from workers.device import resolve_device, worker_processes

    processes = worker_processes(args.concurrency, args.pool, resolve_device(settings.device))
    os.environ[PRELOAD_ENV] = ",".join(runnable)
    os.environ[PROCESSES_ENV] = str(processes)
    app = create_app(settings, queues=runnable, refused=refused, device=str(resolve_device(settings.device)),
                     processes=processes)
    if args.pool == "solo":
        preload_models(settings)  # no fork: load in this very process
    if not any(a.startswith(("-n", "--hostname")) for a in celery_args):
        celery_args = ["--hostname", f"docqueue-{os.getpid()}@%h", *celery_args]
    app.worker_main([
        "worker", "--queues", ",".join(runnable), "--concurrency", str(processes), "--pool", args.pool,
        "--loglevel", args.loglevel, "--without-gossip", "--without-mingle", *celery_args,
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
