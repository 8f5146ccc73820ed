"""batch ids up to 128 characters on every database; job heartbeats

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:30:00

Publishers name their own batches ("crm-export-2026-11-23-eu-west-nightly..."): at 32 characters
PostgreSQL refused longer ids while SQLite (which does not enforce VARCHAR lengths) took them, so
the same message worked on one database and failed on the other. Ids are now checked against one
limit (``docqueue.schema.BATCH_ID_MAX_LENGTH``) before any row is written, and the columns are that
wide. Widening a varchar does not rewrite a PostgreSQL table.

``job.heartbeat_at`` is refreshed by the worker running the job; the reaper requeues running jobs
whose heartbeat stopped (their worker died), found through the index on ``job.status``.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COLUMNS = (("batch", "id"), ("document", "batch_id"), ("job", "batch_id"))


def upgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, type_=sa.String(length=128), existing_type=sa.String(length=32),
                                  existing_nullable=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_job_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_status')
        batch_op.drop_column('heartbeat_at')
    for table, column in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, type_=sa.String(length=32), existing_type=sa.String(length=128),
                                  existing_nullable=False)
