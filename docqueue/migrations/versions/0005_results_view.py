"""job.correlation_id and the SQL view docqueue_results: outcomes readable without Python

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:40:00

Hand-written. ``docqueue_results`` is the documented, stable way for other programs (a BI tool, a
Java service) to read outcomes with plain SQL: one row per job, joined with its document and batch.
Its column names are part of the contract (README, "Integrating through the queue"); the tables
behind it may change. The column is nullable, so SQLite adds it with plain ALTER TABLE.

Note for later migrations on SQLite: a batch_alter_table that *recreates* ``job``, ``document`` or
``batch`` must drop this view first and create it again after (SQLite checks views on rename).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: The same SELECT on both databases: only standard SQL, no JSON operators.
VIEW_SQL = """
CREATE VIEW docqueue_results AS
SELECT
    job.batch_id AS batch_id,
    batch.task AS task,
    job.id AS job_id,
    document.id AS document_id,
    document.source AS document,
    document.external_id AS external_id,
    document.position AS position,
    job.status AS status,
    job.result AS result,
    job.error_kind AS error_kind,
    job.error_message AS error_message,
    job.model_id AS model_id,
    job.model_revision AS model_revision,
    job.reused_from AS reused_from,
    job.correlation_id AS correlation_id,
    job.created_at AS created_at,
    job.finished_at AS finished_at
FROM job
JOIN document ON document.id = job.document_id
JOIN batch ON batch.id = job.batch_id
"""


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=255), nullable=True))
    op.execute(VIEW_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS docqueue_results")
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('correlation_id')
