"""the ids' index finds creation times: the two ``created_at`` indexes go

A run's and a notification's ids are ULID-style: their first 48 bits are the milliseconds they
were made, and since this revision those are their row's ``created_at``. The primary key's
index then finds a range of creation times (``clock.id_floor``), and ``ix_task_run_created_at``
and ``ix_notification_created_at`` were one more b-tree written for every accepted
notification and its runs, read by nothing the ids cannot do: at a steady load they cost
4-5% of the server's CPU. The downgrade builds them again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 04:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_task_run_created_at", table_name="task_run")
    op.drop_index("ix_notification_created_at", table_name="notification")


def downgrade() -> None:
    op.create_index("ix_notification_created_at", "notification", ["created_at"])
    op.create_index("ix_task_run_created_at", "task_run", ["created_at"])
