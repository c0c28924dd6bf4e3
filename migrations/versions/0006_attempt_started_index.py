"""attempts by start time: the dashboard's chart reads a range of an index

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:35:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_attempt_started_outcome", "attempt", ["started_at", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_attempt_started_outcome", table_name="attempt")
