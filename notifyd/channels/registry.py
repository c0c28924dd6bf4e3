"""Build the set of channels a server offers from its settings."""

from __future__ import annotations

from notifyd.channels.apprise import POOL_SIZE, AppriseChannel, apprise_available
from notifyd.channels.base import Channel
from notifyd.channels.email import EmailChannel
from notifyd.channels.log import LogChannel
from notifyd.channels.webhook import MAX_CONNECTIONS, WebhookChannel
from notifyd.config import Settings


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this server delivers through, by name."""
    log = LogChannel(settings.log_file)
    # As many webhook connections as webhook runs may execute at once, so none waits for one.
    webhooks = max(MAX_CONNECTIONS, _concurrency(settings, "webhook"))
    channels: list[Channel] = [
        log,
        EmailChannel(settings.smtp),
        WebhookChannel(settings.webhook, max_connections=webhooks),
    ]
    if apprise_available():
        # Its own threads: `[channels.apprise] concurrency` sizes the pool, else the default.
        override = settings.channels.get("apprise")
        pool = override.concurrency if override and override.concurrency else POOL_SIZE
        channels.append(AppriseChannel(settings.webhook, pool_size=pool))
    if settings.enable_test_tasks:
        from notifyd.channels.testing import TestHoldChannel

        channels.append(TestHoldChannel(settings.home, log))
    return {channel.name: channel for channel in channels}


def _concurrency(settings: Settings, channel: str) -> int:
    """How many runs of ``channel`` one process executes at once."""
    override = settings.channels.get(channel)
    if override is not None and override.concurrency is not None:
        return min(override.concurrency, settings.concurrency)
    return settings.concurrency
