"""The ``test-hold`` channel, for crash and shutdown tests only (``enable_test_tasks``).

A delivery waits until a release file exists in the data directory, then writes to the log
channel. A test can so hold a run in ``running`` for as long as it likes, kill the server,
release, restart, and watch the rescued run succeed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from notifyd.channels.base import Channel, OutgoingMessage
from notifyd.channels.log import LogChannel

RELEASE_FILE = "release-test-hold"


class TestHoldChannel(Channel):
    """Blocks each delivery until ``<home>/release-test-hold`` exists."""

    name: ClassVar[str] = "test-hold"

    def __init__(self, home: Path, log: LogChannel) -> None:
        self.release = home / RELEASE_FILE
        self.log = log

    def validate_recipient(self, recipient: str) -> str:
        """Same rules as the log channel."""
        return self.log.validate_recipient(recipient)

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Wait for the release file, then deliver to the log."""
        while not self.release.exists():  # noqa: ASYNC110 - another process creates the file
            await asyncio.sleep(0.05)
        return await self.log.send(message, recipient)

    async def aclose(self) -> None:
        """Nothing to release."""
