"""``docqueue db upgrade``: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from docqueue import db
from producer.context import Context, FullHelpGroup, pass_ctx


@click.group(cls=FullHelpGroup, name="db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("upgrade")
@click.option("--revision", default="head", envvar="DOCQUEUE_DB_REVISION", show_envvar=True,
              help="Target revision (e.g. 0002 to stay on an older schema).")
@pass_ctx
def db_upgrade(obj: Context, revision: str) -> None:
    """Create or migrate the schema (Alembic)."""
    db.upgrade(obj.settings.database_url, revision)
    click.echo(f"database at revision {db.current_revision(db.get_engine(obj.settings.database_url))}")
