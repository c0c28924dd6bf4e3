"""The outcomes a dispatcher has not recorded yet, and how they are recorded: in one batch
through the group-commit writer, or, when the batch fails, one by one with a stripped form of
the one the store refuses. Nothing is dropped: an outcome lost would run its run again."""

from __future__ import annotations

import logging
from functools import partial

from notifyd.tracking import admin, outcomes
from notifyd.tracking.writer import Writer

log = logging.getLogger(__name__)


class Outcomes:
    """Finished attempts waiting to be recorded."""

    def __init__(self, writer: Writer, worker_id: str) -> None:
        self.writer = writer
        self.worker_id = worker_id
        self.pending: list[outcomes.AttemptResult] = []
        # The outcomes could not be recorded last time: record them before claiming more.
        self.failing = False

    def add(self, result: outcomes.AttemptResult) -> None:
        """Keep ``result`` (in the form every store accepts) for the next flush."""
        self.pending.append(outcomes.storable(result))

    async def flush(self) -> None:
        """Record every pending outcome; on a store that is down, keep them and raise."""
        if not self.pending:
            return
        results, self.pending = self.pending, []
        try:
            await self._finish(results)
            self.failing = False
            return
        except Exception:
            log.warning("recording %d outcome(s) failed; trying one by one", len(results))
        # Find the outcome that cannot be stored (the rest go through one by one) and store a
        # stripped-down form of it. When even that fails the store is down: keep them all.
        for index, result in enumerate(results):
            try:
                await self._finish([result])
            except Exception as problem:
                try:
                    await self._finish([outcomes.minimal(result, problem)])
                    log.error("stored a stripped outcome for run %s: %r", result.run_id, problem)
                except Exception:
                    # Keep the outcomes for the next try: dropping them would re-run the runs.
                    self.pending[:0] = results[index:]
                    self.failing = True
                    raise
        self.failing = False

    async def _finish(self, results: list[outcomes.AttemptResult]) -> None:
        await self.writer.run(
            partial(admin.finish_attempts, results=results, worker=self.worker_id),
            pipelined=True,
        )
