"""Schedules, their runs and inbox files; batch.schedule_id

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 07:45:00

Hand-written. Chained onto 0004 on its branch; at merge it is re-chained onto 0005 (the contract's
view), which it does not touch.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("load_options", sa.JSON(), nullable=False),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("every_s", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("catch_up", sa.String(8), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("foreground", sa.Boolean(), nullable=False),
        sa.Column("settle_s", sa.Float(), nullable=False),
        sa.Column("move_done", sa.String(2048), nullable=True),
        sa.Column("move_failed", sa.String(2048), nullable=True),
        sa.Column("outbox", sa.String(2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cursor_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "schedule_run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("schedule_id", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=True),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_run_due"),
    )
    op.create_table(
        "inbox_file",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("schedule_id", sa.String(32), nullable=False),
        sa.Column("file_key", sa.String(64), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("relpath", sa.String(2048), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=False),
        sa.Column("first_position", sa.Integer(), nullable=True),
        sa.Column("documents", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("schedule_id", "file_key", name="uq_inbox_file_key"),
    )
    op.create_index("ix_schedule_run_schedule_id", "schedule_run", ["schedule_id"])
    op.create_index("ix_inbox_file_schedule_state", "inbox_file", ["schedule_id", "state"])
    op.create_index("ix_inbox_file_batch_id", "inbox_file", ["batch_id"])
    with op.batch_alter_table("batch") as batch:
        batch.add_column(sa.Column("schedule_id", sa.String(32), nullable=True))
        batch.create_index("ix_batch_schedule_id", ["schedule_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite 3.35+): alembic's batch mode would rebuild ``batch``, which
        # fails on its rows' foreign keys and on the results view (0005) that reads it.
        op.drop_index("ix_batch_schedule_id", table_name="batch")
        op.execute("ALTER TABLE batch DROP COLUMN schedule_id")
    else:
        with op.batch_alter_table("batch") as batch:
            batch.drop_index("ix_batch_schedule_id")
            batch.drop_column("schedule_id")
    op.drop_index("ix_inbox_file_batch_id", table_name="inbox_file")
    op.drop_index("ix_inbox_file_schedule_state", table_name="inbox_file")
    op.drop_index("ix_schedule_run_schedule_id", table_name="schedule_run")
    op.drop_table("inbox_file")
    op.drop_table("schedule_run")
    op.drop_table("schedule")
