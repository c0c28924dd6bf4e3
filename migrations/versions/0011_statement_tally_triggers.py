"""run tally on PostgreSQL: statement triggers over transition tables, not a call per row

Every insert, status change and delete of runs still adds its +/- counts to
``task_run_tally``, but a statement that moves many runs (a group commit, a claim, a batch of
outcomes) adds one row per (queue, status) instead of one per run. SQLite keeps its row
triggers. Both directions swap the triggers inside the migration's transaction.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

from alembic import op

from notifyd.tracking.schema import replace_tally_triggers_v2, restore_tally_triggers_v1

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    replace_tally_triggers_v2(op.get_bind())


def downgrade() -> None:
    restore_tally_triggers_v1(op.get_bind())
