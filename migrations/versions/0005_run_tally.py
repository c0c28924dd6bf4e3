"""run tally: exact counts by queue and status without scanning every run

``task_run_tally`` gets a +1/-1 row from triggers on every insert, status change and delete of
a run; the dispatcher folds them now and then (``notifyd.tracking.admin.compact_tally``). An
index on (status, id) and one on (queue, id) find a filtered page of the newest runs, and the
oldest queued run, without sorting every match.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from notifyd.tracking.schema import create_tally_triggers, drop_tally_triggers

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_run_tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_run_status_id", "task_run", ["status", "id"])
    op.drop_index("ix_task_run_queue", table_name="task_run")
    op.create_index("ix_task_run_queue_id", "task_run", ["queue", "id"])
    create_tally_triggers(op.get_bind())


def downgrade() -> None:
    drop_tally_triggers(op.get_bind())
    op.drop_index("ix_task_run_queue_id", table_name="task_run")
    op.create_index("ix_task_run_queue", "task_run", ["queue"])
    op.drop_index("ix_task_run_status_id", table_name="task_run")
    op.drop_table("task_run_tally")
