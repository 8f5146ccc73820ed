"""``docqueue beat`` and ``docqueue watch``: the long-running processes that fire schedules (Celery
beat with the ``schedule`` table as its schedule, ``producer.schedules.beat``). ``watch`` is the
inbox loop of one schedule in the foreground, without a beat.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from celery import beat as celery_beat
from sqlalchemy.engine import Engine
from sqlmodel import col

from docqueue.models import Schedule
from producer.commands.schedule import (
    DURATION,
    INBOX_OPTIONS,
    ArgumentFirstGroup,
    new_schedule,
    runner_for,
    with_options,
)
from producer.context import Context, err_console, pass_ctx
from producer.schedules.beat import DatabaseScheduler
from producer.schedules.timing import OVERLAP_POLICIES
from producer.sourceopts import SOURCE_OPTIONS
from producer.taskopts import TASK_SPECS, TaskSpec, split_task_options
from producer.webhook_opts import WEBHOOK_OPTIONS


# ------------------------------------------------------------------------------------ beat/watch
def _exit_at_once(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _stop_signals_end_the_command() -> None:
    """SIGTERM/SIGINT before beat's loop runs (a watch writing its schedule row, the scheduler being
    set up) end the command quietly with status 0: nothing is being fired yet, and the database work
    under way is rolled back by its transaction. Without this, a stop in that window killed the
    process with the default handler (status -15), as a supervisor stopping a fresh watch saw."""
    signal.signal(signal.SIGTERM, _exit_at_once)
    signal.signal(signal.SIGINT, _exit_at_once)


def _serve(obj: Context, max_interval: float | None, loglevel: str, only: str | None = None) -> None:
    """Celery beat's service loop with the database scheduler; SIGTERM/SIGINT stop it after the
    current tick (a run being fired is finished and recorded first)."""
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s",
                        stream=sys.stderr)
    if loglevel.lower() != "debug":  # alembic's "Context impl SQLiteImpl." at every start says nothing new
        logging.getLogger("alembic").setLevel(logging.WARNING)
    interval = max_interval or obj.settings.beat_max_interval_s
    runner = runner_for(obj)
    service = celery_beat.Service(obj.app, max_interval=interval,
                                  scheduler_cls=partial(DatabaseScheduler, runner=runner, only=only))

    def stop(signum: int, _frame: Any) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    err_console.print(f"docqueue beat: schedules from {obj.engine.url.render_as_string(hide_password=True)}, "
                      f"looking every {interval:g}s at most" + (f" (schedule {only} only)" if only else ""))
    service.start()


_SERVE_OPTIONS = [
    click.option("--max-interval", type=click.FloatRange(0.05, 300), default=None,
                 envvar="DOCQUEUE_BEAT_MAX_INTERVAL_S", show_envvar=True,
                 help="Longest sleep between two looks at the schedules [default: 5]."),
    click.option("--loglevel", "-l", default="info", envvar="DOCQUEUE_LOGLEVEL", show_envvar=True,
                 type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False), help="Log level."),
]


def _beat(obj: Context, max_interval: float | None, loglevel: str) -> None:
    """Fire the schedules (`docqueue schedule`) when due: Celery beat with a scheduler on the database.
    Runs read their sources on this machine. Several beats may run: each run is fired by one of them."""
    _stop_signals_end_the_command()
    _serve(obj, max_interval, loglevel)


beat = click.command("beat")(with_options(_SERVE_OPTIONS, pass_ctx(_beat)))


@click.group("watch", cls=ArgumentFirstGroup, context_settings={"show_default": True})
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--every", type=DURATION, default="5s", envvar="DOCQUEUE_WATCH_EVERY", show_envvar=True,
              help="How often the folder is looked at.")
@click.option("--overlap", type=click.Choice(OVERLAP_POLICIES), default="skip", envvar="DOCQUEUE_OVERLAP",
              show_envvar=True, help="skip: new files wait while the previous batch is unfinished; allow: they are "
                                     "submitted at once, batch after batch.")
@click.option("--name", envvar="DOCQUEUE_WATCH_NAME", show_envvar=True,
              help="Name of the watch's schedule row, which remembers the files taken [default: watch-<hash of "
                   "folder and task>]; the same name later goes on where it stopped.")
def watch(**_: Any) -> None:
    """Process each new file of FOLDER with TASK in the foreground, the inbox loop of a schedule without a
    beat: `docqueue watch /inbox classify --labels a,b --move-done /done`."""


def upsert_watch(engine: Engine, fresh: Schedule) -> str:
    """The watch's schedule row, added or (the same name run again, the documented resume) updated
    from the command line; its id. The memory of files taken and the anchor of due times stay."""
    with engine.begin() as conn:
        found = conn.execute(sa.select(col(Schedule.id), col(Schedule.foreground))
                             .where(col(Schedule.name) == fresh.name)).one_or_none()
        if found is None:
            conn.execute(sa.insert(Schedule).values(**fresh.model_dump()))
            return fresh.id
        if not found[1]:
            raise click.ClickException(f"{fresh.name!r} is a schedule of `docqueue beat`, not a watch; pick --name")
        keep = {"id", "name", "created_at", "cursor_at"}
        values = {k: v for k, v in fresh.model_dump().items() if k not in keep}
        values["paused"] = False  # a watch paused by `schedule pause` runs again when started again
        conn.execute(sa.update(Schedule).where(col(Schedule.id) == found[0]).values(**values))
        return str(found[0])


def _watch_command(spec: TaskSpec) -> None:
    def command(obj: Context, max_interval: float | None, loglevel: str, **kwargs: Any) -> None:
        _stop_signals_end_the_command()
        task_options, inbox = split_task_options(spec, kwargs)
        group = click.get_current_context().parent
        assert group is not None
        folder: Path = group.params["folder"]
        name = group.params["name"] or "watch-" + hashlib.sha256(
            f"{folder.resolve()}\x00{spec.name}".encode()).hexdigest()[:12]
        fresh = new_schedule(obj, spec, name, [str(folder.resolve())], task_options,
                              {"every": group.params["every"], "overlap": group.params["overlap"], "catch_up": "last",
                               **inbox}, foreground=True)
        schedule_id = upsert_watch(obj.engine, fresh)
        _serve(obj, max_interval, loglevel, only=schedule_id)

    command.__doc__ = f"Watch the folder with `submit {spec.name}`: {spec.help}"
    f = pass_ctx(command)
    f = spec.apply(f)
    f = with_options([*INBOX_OPTIONS, *_SERVE_OPTIONS, *SOURCE_OPTIONS, *WEBHOOK_OPTIONS], f)
    watch.command(spec.name, short_help=f"Watch the folder with `submit {spec.name}`.")(f)


for _spec in TASK_SPECS.values():
    _watch_command(_spec)
