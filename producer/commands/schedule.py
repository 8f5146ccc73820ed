"""``docqueue schedule ...``, ``docqueue beat`` and ``docqueue watch``: scheduled submissions and
inbox folders (the logic lives in ``producer.schedules``).

``schedule add NAME (--cron EXPR | --every DURATION) [schedule options] TASK SOURCE... [submit
options]``: TASK is a subcommand taking exactly ``submit TASK``'s options (producer/taskopts.py), and
the schedule stores the params that submit would send.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import sqlalchemy as sa
from croniter import croniter
from rich.console import Console
from rich.table import Table
from sqlmodel import col

from docqueue.broker import redis_client
from docqueue.models import InboxFile, Job, Schedule, ScheduleRun, utcnow
from docqueue.schema import new_id
from producer.batch_control import UNFINISHED
from producer.context import Context, err_console, json_option, pass_ctx
from producer.schedules.runner import ScheduleRunner
from producer.schedules.timing import CATCH_UP_POLICIES, OVERLAP_POLICIES, aware, describe, next_due, parse_duration
from producer.sourceopts import SOURCE_OPTIONS, pop_source_options
from producer.taskopts import TASK_SPECS, TaskSpec, split_task_options
from producer.webhook_opts import WEBHOOK_OPTIONS, pop_webhook_options

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


DURATION = Duration()

#: Inbox options, shared by ``schedule add`` and ``watch``.
INBOX_OPTIONS = [
    click.option("--settle", type=DURATION, default="5s", envvar="DOCQUEUE_SCHEDULE_SETTLE", show_envvar=True,
                 help="A file modified more recently than this (or changing while it is read) waits for a later "
                      "run: it is probably still being written."),
    click.option("--move-done", type=click.Path(file_okay=False, path_type=Path), envvar="DOCQUEUE_MOVE_DONE",
                 show_envvar=True, help="Once its batch has finished, move each file whose documents all "
                                        "succeeded here (same path under the folder)."),
    click.option("--move-failed", type=click.Path(file_okay=False, path_type=Path), envvar="DOCQUEUE_MOVE_FAILED",
                 show_envvar=True, help="Once its batch has finished, move each file with a failed document here."),
    click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), envvar="DOCQUEUE_OUTBOX",
                 show_envvar=True, help="Once its batch has finished, write each file's results here as "
                                        "<path under the folder>.json."),
]


class ArgumentFirstGroup(click.Group):
    """A group read as ``NAME [options] TASK [task arguments and options]``: Click stops reading a
    group's options at its first positional argument, so the options between NAME and TASK are read
    here (everything from the first task name on is the subcommand's)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        at = next((n for n, a in enumerate(args) if a in self.commands), None)
        if at is None:
            return super().parse_args(ctx, args)
        ctx.allow_interspersed_args = True
        rest = click.Command.parse_args(self, ctx, args[:at])
        if rest:
            raise click.UsageError(f"unexpected argument(s) before {args[at]}: {' '.join(rest)}", ctx)
        ctx._protected_args, ctx.args = args[at:at + 1], args[at + 1:]
        return ctx.args


def with_options(options: list[Any], f: Any) -> Any:
    for decorator in reversed(options):
        f = decorator(f)
    return f


def _schedule(obj: Context, name: str) -> Schedule:
    with obj.engine.connect() as conn:
        row = conn.execute(sa.select(Schedule).where(col(Schedule.name) == name)).one_or_none()
    if row is None:
        raise click.ClickException(f"no schedule {name!r} (`docqueue schedule list` shows them)")
    return Schedule.model_validate(row._mapping)


def runner_for(obj: Context) -> ScheduleRunner:
    return ScheduleRunner(obj.settings, obj.engine, obj.app, obj.broker_url,
                          redis_client(obj.broker_url, settings=obj.settings))


def _check_folders(sources: list[str], folders: dict[str, Path | None]) -> dict[str, str | None]:
    """Absolute output folders, refused inside a source folder: moved or written files would be
    read again as new files."""
    out: dict[str, str | None] = {}
    roots = [Path(s).resolve() for s in sources if Path(s).is_dir()]
    for option, folder in folders.items():
        if folder is None:
            out[option] = None
            continue
        resolved = folder.resolve()
        for root in roots:
            if resolved == root or root in resolved.parents:
                raise click.BadParameter(f"{folder} is inside the source folder {root}: its files would be read "
                                         "again as new ones; pick a folder outside it",
                                         param_hint=f"--{option.replace('_', '-')}")
        out[option] = str(resolved)
    return out


def new_schedule(obj: Context, spec: TaskSpec, name: str, sources: list[str], task_options: dict[str, Any],
                  s: dict[str, Any], foreground: bool = False) -> Schedule:
    """A schedule row from the command line, every option checked before anything is stored."""
    if not re.match(NAME_PATTERN, name):
        raise click.BadParameter("letters, digits and ._:- (up to 128), starting with a letter or digit",
                                 param_hint="NAME")
    cron, every = s.get("cron"), s.get("every")
    if bool(cron) == bool(every):
        raise click.UsageError("give exactly one of --cron EXPR and --every DURATION")
    zone = s.get("timezone") or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise click.BadParameter(f"unknown time zone {zone!r}", param_hint="--timezone") from e
    if cron and not croniter.is_valid(cron):
        raise click.BadParameter(f"{cron!r} is not a cron expression (e.g. '0 2 * * *': 02:00 every day)",
                                 param_hint="--cron")
    if every is not None and every < 1:
        raise click.BadParameter("at least 1s", param_hint="--every")
    params = spec.build(obj.settings, task_options)
    load, force = pop_source_options(s)
    webhook_url, webhook_documents = pop_webhook_options(s)
    absolute = [str(Path(src).absolute()) for src in sources]
    folders = _check_folders(absolute, {k: s.get(k) for k in ("move_done", "move_failed", "outbox")})
    return Schedule(
        id=new_id(), name=name, task=spec.name, params=params, sources=absolute,
        load_options={"include": list(load.include), "exclude": list(load.exclude), "hidden": load.hidden,
                      "text_field": load.text_field, "id_field": load.id_field, "clean_text": load.clean_text,
                      "force": force},
        cron=cron or None, every_s=every, timezone=zone, catch_up=s.get("catch_up") or "last",
        overlap=s.get("overlap") or "skip", settle_s=s["settle"], foreground=foreground, created_at=utcnow(),
        move_done=folders["move_done"], move_failed=folders["move_failed"], outbox=folders["outbox"],
        webhook_url=webhook_url, webhook_documents=webhook_documents)


def _schedule_json(obj: Context, schedule: Schedule) -> dict[str, Any]:
    """A schedule with its last run, that run's batch state and its next due time."""
    with obj.engine.connect() as conn:
        last = conn.execute(sa.select(ScheduleRun).where(col(ScheduleRun.schedule_id) == schedule.id)
                            .order_by(col(ScheduleRun.fired_at).desc()).limit(1)).one_or_none()
        runs = conn.execute(sa.select(col(ScheduleRun.outcome), sa.func.count())
                            .where(col(ScheduleRun.schedule_id) == schedule.id)
                            .group_by(col(ScheduleRun.outcome))).all()
        files = conn.execute(sa.select(col(InboxFile.state), sa.func.count())
                             .where(col(InboxFile.schedule_id) == schedule.id).group_by(col(InboxFile.state))).all()
        # an error behind a newer idle run (a run that died, then looks that found nothing new) stays in view
        submitted_at = conn.execute(sa.select(sa.func.max(col(ScheduleRun.fired_at))).where(
            col(ScheduleRun.schedule_id) == schedule.id, col(ScheduleRun.outcome) == "submitted")).scalar_one()
        errors = sa.select(ScheduleRun).where(col(ScheduleRun.schedule_id) == schedule.id,
                                              col(ScheduleRun.outcome) == "error")
        if submitted_at is not None:
            errors = errors.where(col(ScheduleRun.fired_at) > submitted_at)
        error = conn.execute(errors.order_by(col(ScheduleRun.fired_at).desc()).limit(1)).one_or_none()
        batch_state = None
        if last is not None and last.batch_id:
            left = conn.execute(sa.select(sa.func.count()).where(col(Job.batch_id) == last.batch_id,
                                                                 col(Job.status).in_(UNFINISHED))).scalar_one()
            batch_state = "unfinished" if left else "finished"
    now = utcnow()
    cursor = aware(schedule.cursor_at) or aware(schedule.created_at) or now
    nxt = None if schedule.paused else next_due(schedule, cursor)
    return {
        "name": schedule.name, "task": schedule.task, "when": describe(schedule), "cron": schedule.cron,
        "every_s": schedule.every_s, "timezone": schedule.timezone, "sources": schedule.sources,
        "params": schedule.params, "catch_up": schedule.catch_up, "overlap": schedule.overlap,
        "paused": schedule.paused, "watch": schedule.foreground, "settle_s": schedule.settle_s,
        "move_done": schedule.move_done, "move_failed": schedule.move_failed, "outbox": schedule.outbox,
        "webhook_url": schedule.webhook_url, "webhook_documents": schedule.webhook_documents,
        "last_run": None if last is None else {
            "due_at": aware(last.due_at).isoformat(),  # type: ignore[union-attr]
            "fired_at": aware(last.fired_at).isoformat(),  # type: ignore[union-attr]
            "trigger": last.trigger, "outcome": last.outcome, "batch": last.batch_id,
            "batch_state": batch_state, "documents": last.documents, "detail": last.detail},
        "last_error": None if error is None or (last is not None and error.id == last.id) else {
            "fired_at": aware(error.fired_at).isoformat(),  # type: ignore[union-attr]
            "batch": error.batch_id, "detail": error.detail},
        "next_run": nxt.isoformat() if nxt else None, "overdue": bool(nxt and nxt < now - timedelta(seconds=1)),
        "runs": {outcome: n for outcome, n in runs}, "files": {state: n for state, n in files},
    }


# ------------------------------------------------------------------------------------ the group
@click.group("schedule")
def schedule_group() -> None:
    """Submissions run on a cron expression or interval by `docqueue beat`; a folder source is an inbox
    (each new file processed once)."""


@schedule_group.group("add", cls=ArgumentFirstGroup, context_settings={"show_default": True},
                      short_help="Add a schedule: NAME, --cron or --every, TASK SOURCE... [submit options].")
@click.argument("name")
@click.option("--cron", envvar="DOCQUEUE_SCHEDULE_CRON", show_envvar=True,
              help="Cron expression, 5 fields (minute hour day month weekday), e.g. '0 2 * * *'.")
@click.option("--every", type=DURATION, envvar="DOCQUEUE_SCHEDULE_EVERY", show_envvar=True,
              help="Fixed interval from when the schedule is added: 30s, 15m, 1h30m, 1d.")
@click.option("--timezone", default="UTC", envvar="DOCQUEUE_SCHEDULE_TIMEZONE", show_envvar=True,
              help="Time zone the cron expression is read in (IANA name, e.g. Europe/Berlin).")
@click.option("--catch-up", type=click.Choice(CATCH_UP_POLICIES), default="last", envvar="DOCQUEUE_CATCH_UP",
              show_envvar=True, help="Runs missed while no beat ran: none (skip them), last (run once for the "
                                     "newest), all (run each, oldest first; at most DOCQUEUE_SCHEDULE_CATCH_UP_MAX).")
@click.option("--overlap", type=click.Choice(OVERLAP_POLICIES), default="skip", envvar="DOCQUEUE_OVERLAP",
              show_envvar=True, help="skip: a run due while the previous run's batch is unfinished is skipped "
                                     "(recorded as skipped); allow: it runs anyway.")
@click.pass_context
def schedule_add(ctx: click.Context, **_: Any) -> None:
    """Add a schedule: NAME, when (--cron or --every) and policies, then TASK SOURCE... with the options
    `docqueue submit TASK` takes (e.g. `schedule add nightly --cron '0 2 * * *' classify /inbox
    --labels a,b`). Inbox options (--settle, --move-done, --move-failed, --outbox) follow TASK."""


def _add_command(spec: TaskSpec) -> None:
    def command(obj: Context, sources: tuple[str, ...], as_json: bool, **kwargs: Any) -> None:
        task_options, inbox = split_task_options(spec, kwargs)
        group = click.get_current_context().parent
        assert group is not None
        s = {**group.params, **inbox}
        schedule = new_schedule(obj, spec, s.pop("name"), list(sources), task_options, s)
        try:
            with obj.engine.begin() as conn:
                conn.execute(sa.insert(Schedule).values(**schedule.model_dump()))
        except sa.exc.IntegrityError as e:
            raise click.ClickException(f"a schedule named {schedule.name!r} exists already "
                                       f"(`docqueue schedule remove {schedule.name}` first)") from e
        out = _schedule_json(obj, schedule)
        if as_json:
            click.echo(json.dumps(out))
        else:
            click.echo(f"schedule {schedule.name}: {spec.name} {describe(schedule)}, next run {out['next_run']}")

    command.__doc__ = f"Schedule `submit {spec.name}`: {spec.help}"
    f = pass_ctx(command)
    f = spec.apply(f)
    f = with_options(INBOX_OPTIONS, f)
    f = with_options([click.argument("sources", nargs=-1, required=True),
               json_option("Print the schedule as JSON."),
               *SOURCE_OPTIONS, *WEBHOOK_OPTIONS], f)
    schedule_add.command(spec.name, short_help=f"Schedule `submit {spec.name}`.")(f)


for _spec in TASK_SPECS.values():
    _add_command(_spec)


@schedule_group.command("list", short_help="Every schedule: its last run, that run's batch, its next run.")
@json_option("Machine-readable output on stdout (one object per line).")
@pass_ctx
def schedule_list(obj: Context, as_json: bool) -> None:
    """Every schedule: when it runs, its last run (outcome, batch, its state) and its next run."""
    with obj.engine.connect() as conn:
        schedules = [Schedule.model_validate(r._mapping)
                     for r in conn.execute(sa.select(Schedule).order_by(col(Schedule.name)))]
    rows = [_schedule_json(obj, s) for s in schedules]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table("name", "task", "when", "state", "last run", "batch", "next run")
    for r in rows:
        last = r["last_run"]
        state = "paused" if r["paused"] else "watch" if r["watch"] else "active"
        table.add_row(r["name"], r["task"], r["when"], state,
                      (f"{last['fired_at'][:19].replace('T', ' ')} {last['outcome']}" if last else "-")
                      + (f"; error at {r['last_error']['fired_at'][:19].replace('T', ' ')}" if r["last_error"] else ""),
                      f"{last['batch']} ({last['batch_state']})" if last and last["batch"] else "-",
                      "-" if r["next_run"] is None
                      else r["next_run"][:19].replace("T", " ") + (" (overdue)" if r["overdue"] else ""))
    Console().print(table)


@schedule_group.command("remove", short_help="Remove a schedule, its runs and its memory of files.")
@click.argument("name")
@pass_ctx
def schedule_remove(obj: Context, name: str) -> None:
    """Remove a schedule with its run history and its memory of inbox files (its batches stay)."""
    schedule = _schedule(obj, name)
    with obj.engine.begin() as conn:
        runs = conn.execute(sa.delete(ScheduleRun).where(col(ScheduleRun.schedule_id) == schedule.id)).rowcount
        files = conn.execute(sa.delete(InboxFile).where(col(InboxFile.schedule_id) == schedule.id)).rowcount
        conn.execute(sa.delete(Schedule).where(col(Schedule.id) == schedule.id))
    click.echo(f"removed schedule {name} ({runs} runs, {files} remembered files)")


@schedule_group.command("run", short_help="Run a schedule now, on this machine.")
@click.argument("name")
@json_option()
@pass_ctx
def schedule_run(obj: Context, name: str, as_json: bool) -> None:
    """Run a schedule now, here (its sources are read on this machine), with its overlap policy."""
    schedule = _schedule(obj, name)
    runner = runner_for(obj)
    runner.recover_abandoned(schedule)
    runner.finish(schedule)
    run = runner.fire(schedule, utcnow(), "manual")
    if run is None:  # the lock key holds microseconds: only a clash with another manual run gets here
        raise click.ClickException(f"schedule {name} is being run right now by another process")
    if as_json:
        click.echo(json.dumps({"schedule": name, "outcome": run.outcome, "batch": run.batch_id,
                               "documents": run.documents, "detail": run.detail}))
        return
    err_console.print(f"schedule {name}: {run.outcome}" + (f" ({run.detail})" if run.detail else ""))
    if run.batch_id:
        click.echo(run.batch_id)


def _set_paused(obj: Context, name: str, paused: bool) -> None:
    schedule = _schedule(obj, name)
    values: dict[str, Any] = {"paused": paused}
    if not paused:  # the paused stretch is not a misfire: catch-up starts from now
        values["cursor_at"] = max(utcnow(), aware(schedule.cursor_at) or utcnow())
    with obj.engine.begin() as conn:
        conn.execute(sa.update(Schedule).where(col(Schedule.id) == schedule.id).values(**values))
    click.echo(f"schedule {name} {'paused' if paused else 'resumed'}")


@schedule_group.command("pause", short_help="Stop firing a schedule until resumed.")
@click.argument("name")
@pass_ctx
def schedule_pause(obj: Context, name: str) -> None:
    """Stop firing a schedule until `schedule resume` (a running batch goes on)."""
    _set_paused(obj, name, True)


@schedule_group.command("resume", short_help="Fire a paused schedule again (from now).")
@click.argument("name")
@pass_ctx
def schedule_resume(obj: Context, name: str) -> None:
    """Fire a paused schedule again; the runs due while it was paused are not caught up."""
    _set_paused(obj, name, False)
