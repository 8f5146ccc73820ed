"""Starting a docqueue worker: the one entry function behind ``docqueue worker`` and ``python -m
workers``, with every option passed in explicitly (the settings object and :class:`WorkerOptions`).

Before Celery starts, each requested queue's model is checked; a queue whose model is missing is
dropped with one line saying how to fix it, so the worker never takes jobs it cannot run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from docqueue.names import TASK_TYPES
from docqueue.secrets import install_log_masking
from docqueue.settings import Settings


@dataclass(frozen=True)
class WorkerOptions:
    """How to run this worker (what is not a setting: the settings carry broker, database, device and
    metrics port). ``celery_args`` go to ``celery worker`` as they are."""

    queues: tuple[str, ...] = TASK_TYPES
    concurrency: int = 0
    pool: str = "prefork"
    loglevel: str = "info"
    uid: str | None = None
    gid: str | None = None
    celery_args: tuple[str, ...] = ()


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    """Run the worker until it stops; the process's exit status (2: no queue it could consume)."""
    install_log_masking()  # Celery logs broker URLs (with their passwords) on start-up and reconnects
    celery_args = list(options.celery_args)
    # Progress bars (tqdm: transformers' "Loading weights") go to stderr, which Celery redirects to
    # its logger at WARNING: one warning line per bar update. A worker has no terminal to draw on.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    uid, gid = options.uid, options.gid
    if settings.metrics_port:
        # before anything imports prometheus_client: it picks multiprocess mode on import
        from workers.metrics_dir import prepare_multiprocess_dir

        metrics_dir = prepare_multiprocess_dir()
        if uid:
            _give_to(metrics_dir, uid, gid)  # the children write there after dropping privileges
    from workers.app import POOL_ENV, PRELOAD_ENV, PROCESSES_ENV, create_app, load_failure, preload_models
    from workers.registry import unavailable_reason
    from workers.status import NODE_ENV

    queues = list(options.queues)
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

    processes = worker_processes(options.concurrency, options.pool, resolve_device(settings.device))
    os.environ[PRELOAD_ENV] = ",".join(runnable)
    os.environ[PROCESSES_ENV] = str(processes)
    os.environ[POOL_ENV] = options.pool
    if not any(a.startswith(("-n", "--hostname")) for a in celery_args):
        celery_args = ["--hostname", f"docqueue-{os.getpid()}@%h", *celery_args]
    os.environ[NODE_ENV] = node_name(celery_args)
    app = create_app(settings, queues=runnable, refused=refused, device=str(resolve_device(settings.device)),
                     processes=processes)
    if options.pool == "solo":
        from docqueue.errors import DocumentError

        try:
            preload_models(settings)  # no fork: load in this very process
        except DocumentError as e:  # a model that passed the start checks but cannot load: one line, no traceback
            print(load_failure(",".join(runnable), e), file=sys.stderr)
            return 1
    if uid:
        celery_args = ["--uid", uid, *(["--gid", gid] if gid else []), *celery_args]
    # the start-up banner is not a log line (--quiet is an option of `celery`, before the subcommand)
    quiet = ["--quiet"] if settings.log_format == "json" else []
    from workers.banner import honest_banner

    honest_banner(app, str(app.conf.broker_url))  # no `redis://:**@` when there is no password
    try:
        code = _run_celery(app, [
            *quiet, "worker", "--queues", ",".join(runnable), "--concurrency", str(processes), "--pool", options.pool,
            "--loglevel", options.loglevel, "--without-gossip", "--without-mingle", *celery_args,
        ])
    finally:
        from workers.metrics_dir import remove_owned_dir

        remove_owned_dir()
    return int(code or 0)


def _run_celery(app: Any, argv: list[str]) -> int:
    """``celery worker ...`` on ``app``, returning its exit status.

    What ``app.worker_main`` does, minus its bug: it (and ``app.start``) drop the status click returns
    in non-standalone mode, so a worker that stopped on an "Unrecoverable error" (a broker error kombu
    cannot go on from) exited 0, and ``restart: on-failure`` never brought it back."""
    from celery.bin.celery import celery as celery_cli

    celery_cli.params[0].default = app
    try:
        code = celery_cli.main(args=argv, standalone_mode=False)
    finally:
        celery_cli.params[0].default = None
    return code if isinstance(code, int) else 0



def node_name(celery_args: list[str]) -> str:
    """The node name Celery will use (``--hostname``/``-n``, ``%h`` expanded), for the children."""
    from celery.utils.nodenames import default_nodename, host_format

    name = None
    for i, a in enumerate(celery_args):
        if a in ("-n", "--hostname") and i + 1 < len(celery_args):
            name = celery_args[i + 1]
        elif a.startswith("--hostname="):
            name = a.split("=", 1)[1]
        elif a.startswith("-n") and len(a) > 2:
            name = a[2:]
    return str(host_format(default_nodename(name)))


def _give_to(path: str, uid: str, gid: str | None) -> None:
    import pwd
    import shutil

    try:
        user = pwd.getpwnam(uid) if not uid.isdigit() else pwd.getpwuid(int(uid))
    except KeyError:
        return  # Celery itself says the user does not exist
    shutil.chown(path, user.pw_uid, int(gid) if gid and gid.isdigit() else user.pw_gid)
