"""an attempt's row is written once, when it ends; the run holds the start of the one under way

A claim (or a hand-off) used to insert each attempt's row as it began and update it when it
ended: two writes of the row and its two indexes per attempt. Now ``task_run`` holds when the
attempt under way began (``attempt_started_at``; its number and worker were there already) and
the row is inserted whole when the attempt ends or is interrupted. The upgrade moves the rows
of attempts under way onto their runs; the downgrade puts them back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

from alembic import op

from notifyd.tracking.schema import attempts_opened_at_claim, attempts_written_at_end

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    attempts_written_at_end(op.get_bind())


def downgrade() -> None:
    attempts_opened_at_claim(op.get_bind())
