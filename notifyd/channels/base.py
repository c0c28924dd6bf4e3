"""The channel contract: everything a delivery channel (log, email, webhook, apprise) may do.

A channel validates recipients when a notification is submitted (a bad address is a 422 then,
not a failed run later), says how a recipient may be shown, and delivers one message to one
recipient. It reports failure by raising ``TransientDeliveryError`` (a retry may succeed;
``retry_after`` if the peer said when) or ``PermanentDeliveryError`` (it cannot); any other
exception counts as transient.

Adding a channel:

1. Subclass ``Channel`` in ``notifyd/channels/<name>.py``; set ``name`` (what clients put in
   ``channel``; it is stored with every run, so keep it stable).
2. ``validate_recipient``: canonical form or ``ValueError`` with a message a client can act on.
   Check here everything that can be checked without the network (SSRF guards included).
3. ``describe_recipient`` if a recipient can carry a secret (a token in a URL): return the
   masked form; runs then store and show that, and keep the full value only where every view
   masks it.
4. ``send``: deliver ``message`` to ``recipient``; return a short JSON summary of the peer's
   answer to record on the attempt; raise the errors above. ``message.destination`` holds the
   named destination's settings (``None`` for an ad-hoc recipient): use ``overlay`` to apply
   its ``[destinations.<name>.<section>]`` overrides to the channel's own settings.
5. ``aclose``: release connections, files and thread pools.
6. Build it in ``notifyd/channels/registry.py``; add its settings section to ``config.py``;
   test it against a real peer in ``tests/channels/``; add a row to the channel table in ``docs/channels.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from notifyd.config import DestinationSettings
from notifyd.tracking.errors import PermanentError, TaskError, TransientError

M = TypeVar("M", bound=BaseModel)


class DeliveryError(TaskError):
    """A channel could not deliver."""


class TransientDeliveryError(DeliveryError, TransientError):
    """Delivery failed in a way that may pass: try again later."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """Delivery failed in a way that will not pass: do not try again."""


# Not frozen: made for every delivery, and a frozen dataclass is three times as slow to build.
@dataclass(slots=True)
class OutgoingMessage:
    """One notification on its way to one recipient.

    ``destination`` is the named destination's settings, secrets included, read from the
    configuration at delivery time (never stored), or None for an ad-hoc recipient.
    """

    delivery_id: str
    notification_id: str
    subject: str | None
    message: str
    data: dict[str, Any] | None
    created_at: datetime
    attempt: int = 1
    destination: DestinationSettings | None = None
    # 1 (min) to 5 (urgent), ntfy's scale; 3 is normal. Map it where the peer has a notion of it.
    priority: int = 3


def overlay(base: M, override: M | None) -> M:
    """``base`` with the fields ``override`` sets explicitly (in the TOML file) replaced."""
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


class Channel(ABC):
    """A way to deliver notifications (see the module's checklist)."""

    name: ClassVar[str]

    @abstractmethod
    def validate_recipient(self, recipient: str) -> str:
        """Return the recipient in canonical form, or raise ValueError saying what is wrong."""

    def describe_recipient(self, recipient: str) -> str:
        """The recipient as it may be shown and stored in clear (masked where it holds secrets)."""
        return recipient

    @abstractmethod
    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Deliver; return a short summary of the peer's answer to record on the attempt."""

    async def aclose(self) -> None:
        """Release connections, files and thread pools."""
        return None
