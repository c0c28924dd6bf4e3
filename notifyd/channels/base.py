"""The channel protocol: what every delivery channel (log, email, webhook, apprise) implements.

A channel validates recipients when a notification is submitted (a bad address is a 422 then,
not a failed run later) and delivers one message to one recipient. It reports failure by raising
``TransientDeliveryError`` (a retry may succeed; ``retry_after`` if the peer said when) or
``PermanentDeliveryError`` (it cannot); any other exception counts as transient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from notifyd.tracking.errors import PermanentError, TaskError, TransientError


class DeliveryError(TaskError):
    """A channel could not deliver."""


class TransientDeliveryError(DeliveryError, TransientError):
    """Delivery failed in a way that may pass: try again later."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """Delivery failed in a way that will not pass: do not try again."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One notification on its way to one recipient."""

    delivery_id: str
    notification_id: str
    subject: str | None
    message: str
    data: dict[str, Any] | None
    created_at: datetime
    attempt: int = 1
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Channel(Protocol):
    """A way to deliver notifications."""

    name: ClassVar[str]

    def validate_recipient(self, recipient: str) -> str:
        """Return the recipient in canonical form, or raise ValueError saying what is wrong."""
        ...

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Deliver; return a short summary of the peer's answer to record on the attempt."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
