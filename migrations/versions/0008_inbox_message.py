"""inbox_message: the messages of inbox topics, which subscribers receive

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from notifyd.timeutil import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_message",
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column(
            "notification_id",
            sa.String(40),
            sa.ForeignKey("notification.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("click", sa.Text(), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=True),
        sa.UniqueConstraint("id", name="uq_inbox_message_id"),
        sa.UniqueConstraint("notification_id", "topic", name="uq_inbox_message_notification_topic"),
    )
    op.create_index(
        "ix_inbox_message_topic_published", "inbox_message", ["topic", "published_at", "seq"]
    )
    op.create_index("ix_inbox_message_expires", "inbox_message", ["expires"])


def downgrade() -> None:
    op.drop_table("inbox_message")
