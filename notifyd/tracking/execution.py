"""One attempt of a claimed run: call its task (async on the loop, sync on the dispatcher's own
threads), and make of what it returned or raised an AttemptResult.

An ``AttemptScope`` given by the caller (notifyd's tracing) opens as the attempt starts, in the
attempt's own asyncio task, so a context it sets is current while the task runs (a webhook
channel reads it to send ``traceparent``); it is closed with the result.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any

from notifyd.tracking import outcomes
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.errors import PermanentError
from notifyd.tracking.registry import TaskContext, TaskRegistry
from notifyd.tracking.retry import RetryPolicies

log = logging.getLogger(__name__)

AttemptObserver = Callable[[ClaimedRun, outcomes.AttemptResult], None]
AttemptEnd = Callable[[outcomes.AttemptResult | None], None]
AttemptScope = Callable[[ClaimedRun], AttemptEnd]
"""Called as an attempt starts; returns what to call as it ends (None when it was cancelled)."""


class Executor:
    """Calls registered tasks for claimed runs; sync ones on a bounded pool of its own threads,
    never in anyio's pool that sync routes share."""

    def __init__(
        self,
        *,
        registry: TaskRegistry,
        retry: RetryPolicies,
        extras: Mapping[str, Any],
        clock: Callable[[], datetime],
    ) -> None:
        self.registry = registry
        self.retry = retry
        self.extras = extras
        self.clock = clock
        self._threads: ThreadPoolExecutor | None = None

    def start(self, threads: int) -> None:
        """Make the thread pool for sync tasks."""
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notifyd-task")

    def stop(self) -> None:
        """Drop the thread pool; queued sync calls are cancelled."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def attempt(
        self, run: ClaimedRun, scope: AttemptScope | None = None
    ) -> outcomes.AttemptResult:
        """Run one attempt of ``run``; its result (cancellation propagates)."""
        end = _opened(scope, run) if scope is not None else None
        result: outcomes.AttemptResult | None = None
        started = time.perf_counter()
        try:
            try:
                response = await self._call(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                policy = self.retry.for_queue(run.queue)
                result = outcomes.failed(run, exc, started=started, now=self.clock(), policy=policy)
            else:
                result = outcomes.succeeded(run, response, started=started, now=self.clock())
            return result
        finally:
            if end is not None:
                _closed(end, result)

    async def _call(self, run: ClaimedRun) -> Any:
        task = self.registry.get(run.task_name)
        if task is None:
            raise PermanentError(f"no task is registered as {run.task_name!r} in this process")
        ctx = TaskContext(run_id=run.id, attempt=run.attempt, extras=self.extras)
        args, kwargs = task.call_args(run.args, ctx)
        if task.is_async:
            return await task.func(*args, **kwargs)
        loop = asyncio.get_running_loop()
        if self._threads is None:
            raise RuntimeError("the dispatcher is not running")
        # The thread runs in the attempt's context (its trace, for one), as an async task would.
        call = partial(contextvars.copy_context().run, task.func, *args, **kwargs)
        return await loop.run_in_executor(self._threads, call)


# A scope (tracing) must never stop delivery, nor lose an attempt's result.


def _opened(scope: AttemptScope, run: ClaimedRun) -> AttemptEnd | None:
    try:
        return scope(run)
    except Exception:
        log.exception("the attempt scope failed to open for run %s", run.id)
        return None


def _closed(end: AttemptEnd, result: outcomes.AttemptResult | None) -> None:
    try:
        end(result)
    except Exception:
        log.exception("the attempt scope failed to close")
