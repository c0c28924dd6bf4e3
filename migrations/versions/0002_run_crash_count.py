"""run crash count

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:50:15.026798
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crashes", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.drop_column("crashes")
