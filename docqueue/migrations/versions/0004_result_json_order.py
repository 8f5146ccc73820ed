"""JSON columns are plain json on PostgreSQL, not jsonb: results keep the key order the worker wrote

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 20:30:00

Hand-written. jsonb stores keys sorted (shortest first, then bytewise), so `docqueue results` on
PostgreSQL printed classify ``scores`` alphabetically and every result's keys in another order than
on SQLite. docqueue never queries inside these columns (no jsonb operators, no GIN index), so json
(the text as written, validated) loses nothing. Rows stored before this revision keep jsonb's order:
that order was already lost. SQLite stores JSON as text already, so this is a no-op there.
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

#: (table, column) of every JSON column.
COLUMNS = (("batch", "params"), ("document", "meta"), ("document", "page_offsets"), ("job", "result"))


def _retype(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {kind} USING "{column}"::text::{kind}')


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
