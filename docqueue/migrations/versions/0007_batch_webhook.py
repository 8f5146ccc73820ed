"""A batch's (and a schedule's) webhook: where its completion events are POSTed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:30:00

Hand-written. ``batch.webhook_url`` (NULL: no webhook) and ``batch.webhook_documents`` (also POST
each document's event). Kept on the batch, not in ``params``: params travel in every message and
are the reuse key, and a webhook changes neither what a model computes nor which results are equal.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN on both databases (no table rebuild: the results view of 0005 reads ``batch``)
    op.add_column("batch", sa.Column("webhook_url", sa.String(length=2048), nullable=True))
    op.add_column("batch", sa.Column("webhook_documents", sa.Boolean(), nullable=False, server_default=sa.false()))
    # a schedule passes its webhook to the batch of every run
    op.add_column("schedule", sa.Column("webhook_url", sa.String(length=2048), nullable=True))
    op.add_column("schedule", sa.Column("webhook_documents", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    # native DROP COLUMN (SQLite 3.35+, PostgreSQL): a batch-mode rebuild would trip over the view
    # and the rows' foreign keys
    op.drop_column("schedule", "webhook_documents")
    op.drop_column("schedule", "webhook_url")
    op.drop_column("batch", "webhook_documents")
    op.drop_column("batch", "webhook_url")
