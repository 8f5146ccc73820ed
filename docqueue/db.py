"""Engine and session factories, and schema management through Alembic."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from docqueue.errors import ConfigurationError, SchemaMissingError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the producer read status while workers write; busy_timeout makes concurrent
    # writers wait instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(database_url: str) -> Engine:
    """A new engine for ``database_url`` (SQLite gets WAL and a busy timeout)."""
    if database_url.startswith("sqlite"):
        engine = sa.create_engine(database_url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def insert_ignoring_duplicates(bind: sa.Connection | Engine, table: Any,
                               index_elements: Sequence[str] | None = None) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` for ``bind``'s database: how a re-delivered
    message or two racing runs add rows exactly once, without a read-then-write race. With
    ``index_elements``, only a conflict on that unique key is ignored (and ``RETURNING`` can tell
    which rows went in); add ``.values(rows)`` or execute it with a list of rows."""
    dialect = bind.dialect.name
    if dialect == "postgresql":
        insert: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:
        raise ConfigurationError(f"docqueue supports SQLite and PostgreSQL, not {dialect}")
    return insert.on_conflict_do_nothing(index_elements=index_elements)


def get_engine(database_url: str) -> Engine:
    """The process-wide engine for a URL, created on first use (never at import time).

    Engines are per process: after a fork, a child must not reuse its parent's connections, so
    callers in forked workers use :func:`dispose_after_fork`.
    """
    with _engines_lock:
        engine = _engines.get(database_url)
        if engine is None:
            engine = _engines[database_url] = make_engine(database_url)
        return engine


def dispose_after_fork() -> None:
    """Drop pooled connections inherited from a parent process without closing the parent's."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _is_known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(revision) is not None
    except Exception:  # an unknown (newer) revision: leave the database alone
        return False


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations (``docqueue db upgrade``)."""
    engine = get_engine(database_url)
    cfg = alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on ``<database file>.migrate.lock`` (POSIX ``flock``), for a SQLite file on
    this machine; an in-memory database needs none."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_schema(database_url: str) -> Engine:
    """Return an engine whose database holds the current schema.

    An empty SQLite file, or one at an older docqueue revision, is migrated on first use (the
    zero-setup default). Any other database must be migrated explicitly, because in production a
    migration is a deliberate step.
    """
    engine = get_engine(database_url)
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return engine
    if engine.dialect.name == "sqlite":
        # The zero-setup default: an empty file, or one an older docqueue created, is migrated here,
        # by one process at a time: two workers started together on a new file must not see each
        # other's half-made schema (tables present, no revision yet) and refuse it.
        with _migration_lock(engine):
            current = current_revision(engine)
            if current == head:
                return engine
            with engine.connect() as conn:
                empty = not sa.inspect(conn).get_table_names()
            if empty or (current is not None and _is_known_revision(current)):
                upgrade(database_url)
                return engine
    raise SchemaMissingError(
        f"database {engine.url.render_as_string(hide_password=True)} is at schema revision "
        f"{current or 'none'}, docqueue needs {head}: run `docqueue db upgrade`"
    )
