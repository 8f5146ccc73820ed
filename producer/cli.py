"""The ``docqueue`` command: the root group and its global options. Each command group lives in its
own module under ``producer/commands/`` and is only registered here.

Every option also reads an environment variable (shown in ``--help``). The CLI never imports
torch or worker code, except ``docqueue worker``, which runs the worker in this process.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from docqueue.errors import DocqueueError
from docqueue.logs import configure_json_logging
from docqueue.secrets import install_log_masking
from producer.commands.batches import batches, cancel, purge
from producer.commands.beat import beat, watch
from producer.commands.broker import broker_group
from producer.commands.database import db_group
from producer.commands.dlq import dlq_group
from producer.commands.events import events
from producer.commands.metrics import metrics_group
from producer.commands.models import models_group
from producer.commands.optimize import optimize
from producer.commands.results import results, status
from producer.commands.retry import retry
from producer.commands.schedule import schedule_group
from producer.commands.submit import submit
from producer.commands.top import top
from producer.commands.train import train_group
from producer.commands.worker import worker
from producer.commands.workers import workers
from producer.context import Context, FullHelpGroup
from producer.envfile import ENV_FILE_OPTION
from producer.service_errors import service_fault_line


def _quiet_closed_stdout() -> None:
    """``docqueue results B | head`` closes the pipe early, which is what the user asked for, not an
    error. Output still buffered would fail again when Python flushes stdout at exit, so stdout is
    pointed at devnull (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (CliRunner): nothing left to flush
        pass
    finally:
        os.close(devnull)


class DocqueueGroup(FullHelpGroup):
    """Turns docqueue's own errors into one clean line and exit code 1 (no traceback), and a reader
    that stops reading stdout into a quiet exit 0 (Click would exit 1 with no message)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
            sys.stdout.flush()  # inside the try: a pipe closed after the last write fails here
            return rv
        except DocqueueError as e:
            raise click.ClickException(str(e)) from e
        except BrokenPipeError:
            _quiet_closed_stdout()
            ctx.exit(0)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            line = service_fault_line(e)  # Redis or the database away, or refusing us: one line, no traceback
            if line is None:
                raise
            raise click.ClickException(line) from None


@click.group(cls=DocqueueGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--database-url", envvar="DATABASE_URL", show_envvar=True,
              help="SQLAlchemy database URL [default: sqlite:///docqueue.db].")
@click.option("--redis-url", envvar="REDIS_URL", show_envvar=True,
              help="Broker URL [default: redis://localhost:6379/0, else an embedded Redis].")
@click.option("--data-dir", envvar="DOCQUEUE_DATA_DIR", show_envvar=True, type=click.Path(path_type=Path),
              help="Local state (embedded Redis) [default: .docqueue].")
@ENV_FILE_OPTION
@click.version_option(package_name="docqueue")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, redis_url: str | None, data_dir: Path | None) -> None:
    """docqueue: batch document processing on Celery + Redis with resident transformer models."""
    install_log_masking()
    ctx.obj = Context(overrides={"database_url": database_url, "redis_url": redis_url, "data_dir": data_dir})
    try:
        json_logs = ctx.obj.settings.log_format == "json"
    except click.UsageError:
        json_logs = False  # invalid configuration: the command that needs settings says so
    if json_logs:
        configure_json_logging(level=logging.INFO)


for command in (submit, status, results, worker, models_group, db_group, broker_group, dlq_group, batches, cancel,
                purge, retry, workers, events, schedule_group, beat, watch, metrics_group, top, train_group):
    main.add_command(command)
models_group.add_command(optimize)

if __name__ == "__main__":  # pragma: no cover
    main()
