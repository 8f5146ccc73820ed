"""document sources (row, external id, page offsets) and result reuse (params hash, reused_from)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:00:00

Hand-written. Every new column is nullable, so SQLite adds them with plain ALTER TABLE inside the
batch context (no table copy) and PostgreSQL does not rewrite the tables.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_row', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('page_offsets', JSONType, nullable=True))
        batch_op.create_index(batch_op.f('ix_document_sha256'), ['sha256'], unique=False)

    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('params_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('reused_from', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('reused_from')
        batch_op.drop_column('params_hash')

    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_sha256'))
        batch_op.drop_column('page_offsets')
        batch_op.drop_column('external_id')
        batch_op.drop_column('source_row')
