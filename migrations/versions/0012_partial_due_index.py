"""the due index holds only runs waiting for a worker (queued or retrying)

A run handed to the dispatcher at its commit is stored running and most runs are finished, so
a full ``(status, next_attempt_at)`` index was written on every insert and status change for
rows no claim ever looks for. The partial index is rebuilt in the migration's transaction (on
PostgreSQL it blocks writes to ``task_run`` while it is built: run it before serving).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from alembic import op

from notifyd.tracking.schema import full_due_index, partial_due_index

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    partial_due_index(op.get_bind())


def downgrade() -> None:
    full_due_index(op.get_bind())
