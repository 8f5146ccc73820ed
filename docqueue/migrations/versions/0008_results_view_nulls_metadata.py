"""docqueue_results: SQL NULL ``result`` unless succeeded, and the document's ``metadata``

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 07:45:00

Hand-written. Two promises of the view that did not hold (issue 23, item 15):

- ``result`` was JSON ``null`` (the text ``null``), not SQL NULL, for failed, running and queued
  rows: ``WHERE result IS NULL`` found none of them. The view now gives the result of succeeded
  rows only, and SQL NULL for every other row (the JSON column itself is unchanged).
- ``metadata`` (the document's, as sent or read) is documented as coming back with the result but
  was not in the view. It is now the column ``metadata``, after the others, so ``SELECT`` by column
  position of the older columns still works.

Only the view changes (drop and create, the same standard SQL on SQLite and PostgreSQL).
"""
from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COLUMNS = """
    job.batch_id AS batch_id,
    batch.task AS task,
    job.id AS job_id,
    document.id AS document_id,
    document.source AS document,
    document.external_id AS external_id,
    document.position AS position,
    job.status AS status,
    {result} AS result,
    job.error_kind AS error_kind,
    job.error_message AS error_message,
    job.model_id AS model_id,
    job.model_revision AS model_revision,
    job.reused_from AS reused_from,
    job.correlation_id AS correlation_id,
    job.created_at AS created_at,
    job.finished_at AS finished_at{extra}
"""
_FROM = """
FROM job
JOIN document ON document.id = job.document_id
JOIN batch ON batch.id = job.batch_id
"""
VIEW_SQL = ("CREATE VIEW docqueue_results AS\nSELECT" + _COLUMNS.format(
    result="CASE WHEN job.status = 'succeeded' THEN job.result END", extra=",\n    document.meta AS metadata")
    + _FROM)
#: What 0005 created, for the downgrade.
OLD_VIEW_SQL = "CREATE VIEW docqueue_results AS\nSELECT" + _COLUMNS.format(result="job.result", extra="") + _FROM


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS docqueue_results")
    op.execute(VIEW_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS docqueue_results")
    op.execute(OLD_VIEW_SQL)
