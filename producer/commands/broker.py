"""``docqueue broker url|stop``: the broker docqueue would use, and the embedded one."""

from __future__ import annotations

import click

from docqueue.broker import stop_embedded_redis
from docqueue.secrets import mask_url
from producer.context import Context, FullHelpGroup, pass_ctx


@click.group(cls=FullHelpGroup, name="broker")
def broker_group() -> None:
    """The broker docqueue would use (and the embedded one)."""


@broker_group.command("url")
@pass_ctx
def broker_url(obj: Context) -> None:
    """Print the broker URL (password masked), starting the embedded Redis if that is what would be used."""
    click.echo(mask_url(obj.broker_url))


@broker_group.command("stop")
@pass_ctx
def broker_stop(obj: Context) -> None:
    """Stop the embedded Redis of this data directory (queued messages persist on disk)."""
    stopped = stop_embedded_redis(obj.settings.data_dir)
    click.echo("embedded redis stopped" if stopped else "no embedded redis running")
