"""What the subcommands of one ``docqueue`` invocation share: settings, database, broker, Celery app,
each built on first use (``docqueue --help`` touches none of them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from celery import Celery
from rich.console import Console
from sqlalchemy.engine import Engine

from docqueue import db
from docqueue.broker import redis_client, resolve_broker_url
from docqueue.events import EventSink
from docqueue.queue import make_celery
from docqueue.settings import Settings, get_settings

err_console = Console(stderr=True)


def json_option(help: str = "Machine-readable output on stdout.") -> Any:
    """``--json`` as every command spells it: the same flag name, parameter and DOCQUEUE_JSON."""
    return click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True, help=help)


@dataclass
class Context:
    """Lazily built resources shared by the subcommands of one invocation."""

    overrides: dict[str, Any]
    _settings: Settings | None = None
    _engine: Engine | None = None
    _app: Celery | None = None
    _broker_url: str | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = get_settings(**self.overrides)
            except ValueError as e:
                raise click.UsageError(f"invalid configuration: {e}") from e
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.ensure_schema(self.settings.database_url)
        return self._engine

    @property
    def broker_url(self) -> str:
        if self._broker_url is None:
            self._broker_url = resolve_broker_url(self.settings, announce=lambda m: err_console.print(m))
        return self._broker_url

    @property
    def events(self) -> EventSink:
        """Completion events through a plain Redis client with short timeouts (``docqueue.events``)."""
        return EventSink(self.app, self.settings,
                         redis=redis_client(self.broker_url, timeout=self.settings.broker_connect_timeout_s,
                                            settings=self.settings))

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_celery(self.settings, self.broker_url)
        return self._app


pass_ctx = click.make_pass_decorator(Context)


class FullHelpGroup(click.Group):
    """Lists each subcommand with its whole first sentence (wrapped): Click cuts it at the terminal
    width minus the name ("The models each task is configured to use..."), dropping the part that
    says what the command is for."""

    group_class = type  # subgroups made with @group.group() list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
