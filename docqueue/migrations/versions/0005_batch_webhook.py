"""A batch's webhook: where its completion events are POSTed

Revision ID: 0005_batch_webhook
Revises: 0004
Create Date: 2026-12-03 07:30:00

Hand-written. ``batch.webhook_url`` (NULL: no webhook) and ``batch.webhook_documents`` (also POST
each document's event). Kept on the batch, not in ``params``: params travel in every message and
are the reuse key, and a webhook changes neither what a model computes nor which results are equal.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_batch_webhook'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch") as batch:
        batch.add_column(sa.Column("webhook_url", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("webhook_documents", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("batch") as batch:
        batch.drop_column("webhook_documents")
        batch.drop_column("webhook_url")
