"""Named destinations: ``[destinations.<name>]`` in the config, checked once when the server starts.

Clients name a destination instead of giving addresses and secrets. A destination's run stores
the destination's name and a key of the recipient (a hash prefix), never the recipient itself or
a secret; delivery looks both up in the configuration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from notifyd.channels.base import Channel
from notifyd.config import DestinationSettings, Settings
from notifyd.errors import ConfigError, InvalidInput
from notifyd.tracking.errors import PermanentError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")  # an inbox topic, as ntfy names them


class DestinationPublic(BaseModel):
    """A destination as clients see it: its name and channel, nothing else."""

    name: str
    channel: str


def recipient_key(recipient: str) -> str:
    """A short, stable key naming one recipient of a destination without revealing it."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Destination:
    """One checked destination: its settings and its recipients in canonical form."""

    name: str
    settings: DestinationSettings
    recipients: tuple[str, ...]
    inbox_topic: str | None = None  # also keeps every message in this inbox topic

    @property
    def topics(self) -> tuple[str, ...]:
        """The inbox topics its messages are kept in (what a token bound to it may read)."""
        found = self.recipients if self.channel == "inbox" else ()
        if self.inbox_topic is not None and self.inbox_topic not in found:
            found = (*found, self.inbox_topic)
        return found

    @property
    def channel(self) -> str:
        """The channel it delivers through."""
        return self.settings.channel

    def label(self, index: int) -> str:
        """What a run shows as its recipient: the name, numbered when there are several."""
        return self.name if len(self.recipients) == 1 else f"{self.name}/{index + 1}"


class Destinations:
    """The configured destinations, by name."""

    def __init__(self, destinations: Mapping[str, Destination] | None = None) -> None:
        self._by_name = dict(destinations or {})

    @classmethod
    def from_settings(cls, settings: Settings, channels: Mapping[str, Channel]) -> Destinations:
        """Check every destination against the channels; ConfigError names what is wrong."""
        checked = {}
        for name, config in settings.destinations.items():
            where = f"destinations.{name}"
            if not NAME.match(name):
                raise ConfigError(f"{where}: a name is letters, digits, '.', '_' or '-'")
            channel = channels.get(config.channel)
            if channel is None:
                offered = ", ".join(sorted(channels))
                raise ConfigError(
                    f"{where}: unknown channel {config.channel!r}; this server offers {offered}"
                )
            recipients = []
            for index, recipient in enumerate(config.to):
                try:
                    recipients.append(channel.validate_recipient(recipient))
                except ValueError as exc:
                    raise ConfigError(f"{where}.to[{index}]: {exc}") from None
            inbox_topic = None
            if config.inbox is not False:
                inbox_topic = name if config.inbox is True else config.inbox
                if "inbox" not in channels or not TOPIC.match(inbox_topic):
                    raise ConfigError(
                        f"{where}.inbox: true, or a topic of 1 to 64 letters, digits, '-' or '_'"
                    )
            checked[name] = Destination(name, config, tuple(dict.fromkeys(recipients)), inbox_topic)
        return cls(checked)

    def public(self) -> list[DestinationPublic]:
        """Names and channels, sorted by name."""
        return [
            DestinationPublic(name=d.name, channel=d.channel)
            for d in sorted(self._by_name.values(), key=lambda d: d.name)
        ]

    def all(self) -> list[Destination]:
        """Every destination, by name."""
        return [self._by_name[name] for name in sorted(self._by_name)]

    def get(self, name: str) -> Destination:
        """The destination called ``name``; InvalidInput (422) when there is none."""
        found = self._by_name.get(name)
        if found is None:
            known = ", ".join(sorted(self._by_name)) or "none are configured"
            raise InvalidInput(f"destination: no destination named {name!r} ({known})")
        return found

    def resolve(self, name: str, key: str, channel: str) -> tuple[DestinationSettings, str]:
        """The settings and recipient a destination run delivers to, from the configuration now."""
        found = self._by_name.get(name)
        if found is None:
            raise PermanentError(f"destination {name!r} is no longer configured")
        if found.channel != channel:
            raise PermanentError(
                f"destination {name!r} now uses channel {found.channel!r}, not {channel!r}"
            )
        for recipient in found.recipients:
            if recipient_key(recipient) == key:
                return found.settings, recipient
        raise PermanentError(f"this recipient was removed from destination {name!r}")
