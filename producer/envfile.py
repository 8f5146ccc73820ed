"""``docqueue --env-file PATH``: settings from a dotenv file other than ``./.env``.

The option only records the path in ``DOCQUEUE_ENV_FILE`` (``docqueue.settings.env_file``): every
later ``get_settings`` in this process reads it, and so do the worker processes ``docqueue worker``
starts, which inherit the environment. It runs first (eager), before anything reads settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from docqueue.settings import ENV_FILE_ENV


def _use(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        os.environ[ENV_FILE_ENV] = str(value.resolve())


ENV_FILE_OPTION: Any = click.option(
    "--env-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar=ENV_FILE_ENV,
    show_envvar=True, is_eager=True, expose_value=False, callback=_use,
    help="Read settings (REDIS_URL, DATABASE_URL, DOCQUEUE_*) from this dotenv file instead of ./.env; "
         "the environment still wins over the file.")
