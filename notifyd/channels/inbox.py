"""The ``inbox`` channel: a topic that people's phones, desktops and browsers subscribe to.

The message itself is stored with the notification (the submitter stages it); the run offers
it to the live subscribers, here and, on PostgreSQL, in every other process, and records how
many it reached. A recipient is a topic name, as ntfy spells them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from notifyd.channels.base import Channel, OutgoingMessage
from notifyd.inbox.service import Inbox
from notifyd.inbox.store import check_topic


class InboxChannel(Channel):
    """Offers stored messages to the subscribers of their topic."""

    name: ClassVar[str] = "inbox"

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def validate_recipient(self, recipient: str) -> str:
        """A topic: 1 to 64 letters, digits, '-' or '_'."""
        return check_topic(recipient.strip())

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Offer the stored message; a message deleted meanwhile (by its reader) is done."""
        published = await self.inbox.publish(message.notification_id, recipient)
        stored = published.message
        if stored is None:
            return {"topic": recipient, "kept": False, "subscribers": 0}
        if published.before:
            # Offered by an attempt whose end was never recorded (the process died): offering
            # it again would give it twice to whoever got it then.
            return {"topic": recipient, "message_id": stored.id, "published": "before"}
        summary: dict[str, Any] = {
            "topic": recipient,
            "message_id": stored.id,
            "subscribers": published.subscribers,
        }
        if published.announced is not None:
            summary["relayed"] = published.announced
        return summary
