"""task_run.trace_context: the W3C trace context a run was accepted under

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column is a plain ALTER TABLE on both stores: no batch copy of the table (a
    # copy would drop the tally's triggers on SQLite).
    op.add_column("task_run", sa.Column("trace_context", sa.String(200), nullable=True))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place, keeping the table's triggers.
    op.execute("ALTER TABLE task_run DROP COLUMN trace_context")
