"""The inbox's table: one row per message of a topic, kept for a while, bounded per topic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from notifyd.timeutil import UTCDateTime


class InboxMessage(SQLModel, table=True):
    """A message of a topic as subscribers receive it (ntfy's fields; Gotify's id is ``seq``)."""

    __tablename__ = "inbox_message"
    __table_args__ = (
        UniqueConstraint("notification_id", "topic", name="uq_inbox_message_notification_topic"),
        UniqueConstraint("id", name="uq_inbox_message_id"),
        Index("ix_inbox_message_topic_published", "topic", "published_at", "seq"),
        # Every topic in the order of publication: what each process reads next on PostgreSQL.
        Index("ix_inbox_message_published", "published_at", "seq"),
    )

    # Gotify's integer message id, and the order of a topic's messages with ``time``.
    seq: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    id: str = Field(sa_column=Column(String(12), nullable=False))
    topic: str = Field(sa_column=Column(String(64), nullable=False))
    notification_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("notification.id", ondelete="CASCADE"), nullable=False
        )
    )
    # When it is (or was) published: the accept, or the scheduled time of a delayed message.
    time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    # When its run offered it to the subscribers (None: not yet). Replays follow this order,
    # the order subscribers saw live, so "since the last message I got" repeats nothing.
    published_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    title: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message: str = Field(sa_column=Column(Text, nullable=False))
    priority: int = Field(sa_column=Column(Integer, nullable=False))
    tags: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    click: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # markdown, attachment links, icon: what ntfy's clients show beside the text.
    extras: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
