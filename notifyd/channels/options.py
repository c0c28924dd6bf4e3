"""What a message may carry besides its text: the named destination it goes to, with its settings.

The delivery task puts the destination's settings (secrets included) into
``OutgoingMessage.options`` at delivery time; they are read from the configuration and never stored.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from notifyd.channels.base import OutgoingMessage
from notifyd.config import DestinationSettings

DESTINATION_OPTION = "destination"
M = TypeVar("M", bound=BaseModel)


def destination_of(message: OutgoingMessage) -> DestinationSettings | None:
    """The settings of the destination ``message`` goes to, if it goes to a named one."""
    value = message.options.get(DESTINATION_OPTION)
    return value if isinstance(value, DestinationSettings) else None


def overlay(base: M, override: M | None) -> M:
    """``base`` with the fields ``override`` sets explicitly (in the TOML file) replaced."""
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))
