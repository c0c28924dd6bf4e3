"""The Tracker ties a store to a registry, a group-commit writer and a dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine

from notifyd.tracking.clock import StoreClock
from notifyd.tracking.dispatcher import Clock, Dispatcher, DispatcherConfig
from notifyd.tracking.notify import Listener, supports_notify
from notifyd.tracking.registry import TaskRegistry
from notifyd.tracking.retry import RetryPolicies
from notifyd.tracking.watch import StoreWatcher, can_watch
from notifyd.tracking.writer import Writer

APP_STATE_KEY = "notifyd_tracker"
log = logging.getLogger(__name__)


class Tracker:
    """Everything a process needs to record runs durably and execute them.

    ``retry`` is the retry policy of every run this tracker creates and executes (by default
    one attempt: see ``notifyd.tracking.retry``). ``inline_writes`` commits the event loop's
    writes on the loop on SQLite (see ``notifyd.tracking.writer``): for a store whose commits do
    not fsync (``synchronous`` NORMAL or OFF). Without a ``clock`` (a test's), times come
    from the store's clock on PostgreSQL (see ``StoreClock``). ``trace_context``, when given,
    is asked for each new run's trace context (a W3C ``traceparent``), stored with the run.
    ``watch_store``: on a SQLite file, look every few milliseconds whether another process
    committed, and claim at once (see ``notifyd.tracking.watch``): for a process that runs a
    dispatcher but accepts nothing, whose runs all come from elsewhere.
    """

    def __init__(
        self,
        engine: Engine,
        registry: TaskRegistry,
        *,
        config: DispatcherConfig | None = None,
        retry: RetryPolicies | None = None,
        extras: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        run_dispatcher: bool = True,
        inline_writes: bool = False,
        before_commit: Callable[[], None] | None = None,
        trace_context: Callable[[], str | None] | None = None,
        watch_store: bool = False,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock: Clock = clock or StoreClock()
        self.writer = Writer(engine, inline=inline_writes, before_commit=before_commit)
        self.retry = retry or RetryPolicies()
        self.run_dispatcher = run_dispatcher
        self.trace_context = trace_context
        self.dispatcher = Dispatcher(
            writer=self.writer,
            registry=registry,
            config=config or DispatcherConfig(),
            retry=self.retry,
            extras=extras,
            clock=self.clock,
        )
        self.notifies = supports_notify(engine)
        self.listener: Listener | None = None
        # A SQLite store has no NOTIFY: a process that only delivers watches the file instead.
        self.watches = watch_store and can_watch(engine)
        self.watcher: StoreWatcher | None = None

    async def start(self) -> None:
        """Start the writer and, unless this process only accepts, the dispatcher."""
        clock = self.clock
        if isinstance(clock, StoreClock) and self.engine.dialect.name == "postgresql":
            await asyncio.to_thread(self._measure_clock, clock)
        self.writer.start()
        if self.run_dispatcher:
            await self.dispatcher.start()
            if self.notifies:
                self.listener = Listener(self.engine, self.dispatcher.wake)
                self.listener.start()
            elif self.watches:
                self.watcher = StoreWatcher(self.engine, self.dispatcher.wake)
                self.watcher.start()

    def _measure_clock(self, clock: StoreClock) -> None:
        """Learn the store's clock before the first run is stamped (the dispatcher keeps it)."""
        try:
            with self.engine.connect() as conn:
                clock.now(conn)
        except Exception as exc:  # the store is down: the dispatcher measures when it is back
            log.warning("could not read the store's clock: %s", type(exc).__name__)

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop the dispatcher (within the grace period), then the writer."""
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self.run_dispatcher:
            await self.dispatcher.stop(grace_seconds)
        self.writer.stop()

    def committed(self, transaction: int | None = None) -> None:
        """New runs were committed (in the writer's ``transaction``, if known): let the
        dispatcher look for them now."""
        if self.run_dispatcher:
            self.dispatcher.wake(transaction)

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """A FastAPI lifespan that runs this tracker: ``FastAPI(lifespan=tracker.lifespan)``."""
        setattr(app.state, APP_STATE_KEY, self)
        await self.start()
        try:
            yield
        finally:
            await self.stop()
