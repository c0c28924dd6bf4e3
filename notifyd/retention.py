"""Automatic pruning: finished runs older than ``retention_days`` go, without a user-written job."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

from notifyd import control
from notifyd.background import Background
from notifyd.tracking import Tracker

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 3600.0
FIRST_PRUNE_DELAY_SECONDS = 60.0


class RetentionLoop:
    """Prunes once shortly after start, then every hour, through the tracker's writer."""

    def __init__(self, tracker: Tracker, retention_days: float) -> None:
        self.tracker = tracker
        self.older_than = timedelta(days=retention_days)
        self._task = Background("notifyd-retention", self._loop)

    async def prune_once(self) -> control.PruneResult:
        """Prune now."""
        chunk = partial(control.prune_chunk, older_than=self.older_than, now=self.tracker.clock())
        # One transaction per chunk, through the writer: accepts are committed in between.
        result = await asyncio.to_thread(control.prune, lambda: self.tracker.writer.run_sync(chunk))
        if result.runs or result.notifications:
            log.info(
                "retention: pruned %d run(s) and %d notification(s) older than %s",
                result.runs,
                result.notifications,
                self.older_than,
            )
        return result

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_PRUNE_DELAY_SECONDS)
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.exception("retention: prune failed; trying again in an hour")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    def start(self) -> None:
        """Start pruning in the background."""
        self._task.start()

    async def stop(self) -> None:
        """Stop pruning."""
        await self._task.stop()
