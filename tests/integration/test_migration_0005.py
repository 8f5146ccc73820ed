"""Migration 0005 on both databases: the view docqueue_results and job.correlation_id come and go
with upgrade/downgrade, and a database with rows at 0004 gets a view that shows them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from docqueue import db


def _state(database_url: str) -> tuple[bool, bool]:
    engine = db.get_engine(database_url)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        views = set(inspector.get_view_names())
        columns = {c["name"] for c in inspector.get_columns("job")}
    return "docqueue_results" in views, "correlation_id" in columns


def test_upgrade_and_downgrade_of_the_results_view(database_url: str) -> None:
    db.upgrade(database_url, "0004")
    assert _state(database_url) == (False, False)
    engine = db.get_engine(database_url)
    with engine.begin() as conn:  # a batch stored before 0005, in the 0004 schema
        conn.execute(sa.text("INSERT INTO batch (id, task, params, created_at) VALUES ('old', 'classify', '{}', "
                             "CURRENT_TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO document (id, batch_id, position, source, text, meta, created_at) "
                             "VALUES ('d1', 'old', 0, 'a.txt', 'x', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO job (id, batch_id, document_id, task, status, attempts, created_at, result) "
                             "VALUES ('j1', 'old', 'd1', 'classify', 'succeeded', 1, CURRENT_TIMESTAMP, "
                             "'{\"label\": \"a\"}')"))
    db.upgrade(database_url, "0005")
    assert db.current_revision(engine) == "0005" and _state(database_url) == (True, True)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT batch_id, document, status, correlation_id, task "
                                   "FROM docqueue_results")).one()
    assert tuple(row) == ("old", "a.txt", "succeeded", None, "classify")
    cfg = db.alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    assert _state(database_url) == (False, False)
    db.upgrade(database_url)
    assert _state(database_url) == (True, True)
    # from the head down again: later revisions that rebuild ``batch`` on SQLite (0006) keep the view
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    assert db.current_revision(engine) == "0005" and _state(database_url) == (True, True)
