"""no index on task_run.task_name: no query filters on it, and every insert paid for it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_task_run_task_name", table_name="task_run")


def downgrade() -> None:
    op.create_index("ix_task_run_task_name", "task_run", ["task_name"])
