"""Build the set of channels a server offers from its settings."""

from __future__ import annotations

from notifyd.channels.apprise import AppriseChannel, apprise_available
from notifyd.channels.base import Channel
from notifyd.channels.email import EmailChannel
from notifyd.channels.log import LogChannel
from notifyd.channels.webhook import WebhookChannel
from notifyd.config import Settings


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this server delivers through, by name."""
    log = LogChannel(settings.log_file)
    channels: list[Channel] = [log, EmailChannel(settings.smtp), WebhookChannel(settings.webhook)]
    if apprise_available():
        channels.append(AppriseChannel(settings.webhook))
    if settings.enable_test_tasks:
        from notifyd.channels.testing import TestHoldChannel

        channels.append(TestHoldChannel(settings.home, log))
    return {channel.name: channel for channel in channels}
