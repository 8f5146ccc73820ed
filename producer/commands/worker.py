"""``docqueue worker``: start a worker in this very process, through the worker's own entry function
(``workers.entry.run_worker``) with the options given here; ``--check`` is the container healthcheck.

The worker package is imported from beside this producer, never from the current directory (a
folder holding its own ``workers`` package must not run instead of docqueue's), and only here,
when a worker is asked for: the rest of the CLI never imports torch or worker code.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import click

import producer
from docqueue.names import TASK_TYPES, TRAIN
from docqueue.webhooks import WEBHOOK_QUEUE
from producer.context import Context, pass_ctx

#: What ``pip install 'docqueue[worker]'`` brings that a worker cannot start without.
WORKER_EXTRA_MODULES = ("torch", "transformers")


def worker_entry() -> ModuleType:
    """``workers.entry`` of this installation: the folder holding ``producer`` goes first on
    ``sys.path`` (``python -m`` puts the current directory there), and a missing ``worker`` extra
    is one line saying how to install it."""
    for name in WORKER_EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise click.ClickException(f"docqueue worker needs the worker extra ({name} is not installed: "
                                       f"{e}); install it with: pip install 'docqueue[worker]'") from None
    root = str(Path(producer.__file__).resolve().parent.parent)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    loaded = sys.modules.get("workers")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve().parent.parent != Path(root):
        raise click.ClickException(f"a foreign `workers` package is loaded ({loaded.__file__}); "
                                   "start docqueue worker from another folder")
    return importlib.import_module("workers.entry")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", envvar="DOCQUEUE_QUEUES", show_envvar=True, default=",".join(TASK_TYPES),
              help="Comma-separated queues to consume: task queues, 'train' (`docqueue train` jobs; not in the "
              "default: a training job holds a process for minutes) and 'webhooks' (webhook deliveries; no "
              "model is loaded for it, and it is not in the default so model workers never POST).")
@click.option("--concurrency", "-c", envvar="DOCQUEUE_CONCURRENCY", show_envvar=True, type=int, default=0,
              help="Worker processes, each with its own resident model; 0: one single-threaded process per "
              "core on the CPU (the fastest there), one on a GPU.")
@click.option("--device", envvar="DOCQUEUE_DEVICE", show_envvar=True, default=None,
              help="auto | cpu | cuda | cuda:N [default: DOCQUEUE_DEVICE or auto].")
@click.option("--pool", envvar="DOCQUEUE_POOL", show_envvar=True, type=click.Choice(["prefork", "solo"]),
              default="prefork", help="prefork: models load in children after the fork; solo: one process.")
@click.option("--loglevel", "-l", envvar="DOCQUEUE_LOGLEVEL", show_envvar=True, default="info",
              help="Celery log level.")
@click.option("--metrics-port", envvar="DOCQUEUE_METRICS_PORT", show_envvar=True, type=click.IntRange(1, 65535),
              default=None, help="Serve Prometheus metrics on this port (/metrics) [default: no metrics server].")
@click.option("--uid", envvar="DOCQUEUE_WORKER_UID", show_envvar=True, default=None,
              help="Started as root: drop to this user once started (Celery's --uid; root draws a SecurityWarning).")
@click.option("--gid", envvar="DOCQUEUE_WORKER_GID", show_envvar=True, default=None, help="With --uid: this group.")
@click.option("--check", is_flag=True, envvar="DOCQUEUE_WORKER_CHECK", show_envvar=True,
              help="Start nothing: exit 0 when a worker on this host is alive and consuming (each of --queues, "
              "when given), else 1 (2: Redis unreachable) with one line why. The container healthcheck.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def worker(obj: Context, queues: str, concurrency: int, device: str | None, pool: str, loglevel: str,
           metrics_port: int | None, uid: str | None, gid: str | None, check: bool,
           celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker whose models load once and stay resident.

    Extra arguments after `--` go to `celery worker` as they are (e.g. `-- --max-tasks-per-child 100`).
    """
    if check:
        from producer.health import check_local_worker

        ctx = click.get_current_context()
        given = ctx.get_parameter_source("queues") != click.core.ParameterSource.DEFAULT
        ctx.exit(check_local_worker(obj.settings, [q.strip() for q in queues.split(",") if q.strip()]
                                    if given else None))
    known = (*TASK_TYPES, TRAIN, WEBHOOK_QUEUE)
    chosen = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise click.UsageError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(known)}")
    entry = worker_entry()
    obj.engine  # noqa: B018  (fail here, before starting, when the schema is missing)
    update: dict[str, object] = {"redis_url": obj.broker_url}
    if device:
        update["device"] = device
    if metrics_port:
        update["metrics_port"] = metrics_port
    settings = obj.settings.model_copy(update=update)
    options = entry.WorkerOptions(queues=chosen, concurrency=concurrency, pool=pool, loglevel=loglevel, uid=uid,
                                  gid=gid, celery_args=tuple(celery_args))
    click.get_current_context().exit(entry.run_worker(settings, options))
