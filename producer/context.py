"""What the subcommands of one ``docqueue`` invocation share: settings, database, broker, Celery app,
each built on first use (``docqueue --help`` touches none of them)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import click
from rich.console import Console

from docqueue.events import EventSink
from docqueue.resources import Resources
from docqueue.settings import Settings, get_settings

err_console = Console(stderr=True)


def json_option(help: str = "Machine-readable output on stdout.") -> Any:
    """``--json`` as every command spells it: the same flag name, parameter and DOCQUEUE_JSON."""
    return click.option("--json", "as_json", is_flag=True, envvar="DOCQUEUE_JSON", show_envvar=True, help=help)


class Context(Resources):
    """Lazily built resources shared by the subcommands of one invocation; starting the embedded
    broker is announced on stderr, and a bad configuration is a usage error."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides

    def announce_embedded_broker(self, message: str) -> None:
        err_console.print(message)

    @cached_property
    def settings(self) -> Settings:
        try:
            return get_settings(**self.overrides)
        except ValueError as e:
            raise click.UsageError(f"invalid configuration: {e}") from e

    @property
    def events(self) -> EventSink:
        """Completion events through a plain Redis client with short timeouts (``docqueue.events``)."""
        return EventSink(self.app, self.settings, redis=self.redis())


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
