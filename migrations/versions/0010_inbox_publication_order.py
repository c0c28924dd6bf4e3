"""inbox_message (published_at, seq): the store's order of publication, read by every process

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_message_published", "inbox_message", ["published_at", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_message_published", table_name="inbox_message")
