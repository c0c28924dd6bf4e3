"""The pieces one notifyd process runs, built from Settings: store, channels, tasks, tracker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from notifyd import tracing
from notifyd.channels.base import Channel
from notifyd.channels.inbox import InboxChannel
from notifyd.channels.registry import build_channels
from notifyd.config import Settings
from notifyd.db import StoreFile, engine_for
from notifyd.errors import StoreUnavailable
from notifyd.inbox.broker import Broker, Limits
from notifyd.inbox.relay import PgRelay
from notifyd.inbox.service import Inbox
from notifyd.inbox.store import InboxStore
from notifyd.metrics import Metrics
from notifyd.notifications import deliverylog
from notifyd.notifications.delivery import EXTRAS_KEY, DeliveryContext, register_delivery
from notifyd.notifications.destinations import Destinations
from notifyd.notifications.idempotency import IdempotencyKeys
from notifyd.notifications.keyring import box_for_store
from notifyd.notifications.retention import RetentionLoop
from notifyd.notifications.submit import Submitter
from notifyd.policy import retry_policies
from notifyd.timeutil import utcnow
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.dispatcher import DispatcherConfig
from notifyd.tracking.outcomes import AttemptResult
from notifyd.tracking.registry import TaskRegistry
from notifyd.tracking.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Settings plus everything built from them; passed down, never imported as a global."""

    settings: Settings
    engine: Engine
    channels: dict[str, Channel]
    registry: TaskRegistry
    tracker: Tracker
    delivery: DeliveryContext
    metrics: Metrics
    submitter: Submitter
    inbox: Inbox
    retention: RetentionLoop | None = None
    destinations: Destinations = field(default_factory=Destinations)
    store_file: StoreFile | None = None
    _watch: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        """Start writing and dispatching (and pruning, when a retention period is set)."""
        if self.store_file is not None and self.store_file.path is not None:
            self.store_file.remember()
            self._watch = asyncio.create_task(self._watch_store(self.store_file))
        await self.tracker.start()
        await self.inbox.start(prune=self.tracker.run_dispatcher)
        if self.tracker.run_dispatcher and self.settings.retention_days > 0:
            self.retention = RetentionLoop(self.tracker, self.settings.retention_days)
            self.retention.start()

    async def stop(self) -> None:
        """Stop dispatching within the grace period, close channels, dispose of the engine."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.retention is not None:
            await self.retention.stop()
        await self.inbox.stop()
        await self.tracker.stop(self.settings.grace_seconds)
        for channel in self.channels.values():
            await channel.aclose()
        self.engine.dispose()

    @staticmethod
    async def _watch_store(store_file: StoreFile) -> None:
        # Says so (an ERROR line) even while nothing is written; every commit and /healthz check too.
        while True:
            await asyncio.sleep(STORE_WATCH_SECONDS)
            with contextlib.suppress(StoreUnavailable):
                store_file.check()


STORE_WATCH_SECONDS = 5.0


def build_inbox(settings: Settings, engine: Engine) -> Inbox:
    """The inbox's store and fan-out; on PostgreSQL, relayed to the other processes."""
    config = settings.inbox
    broker = Broker(
        Limits(
            per_address=config.per_address,
            per_token=config.per_token,
            total=config.total,
            buffer=config.buffer,
        )
    )
    store = InboxStore(engine)
    relay = PgRelay(engine) if engine.dialect.name == "postgresql" else None

    async def not_yet(fn: object) -> None:
        raise RuntimeError("the inbox writes through the tracker's writer, not built yet")

    return Inbox(
        store,
        broker,
        write=not_yet,
        clock=utcnow,
        keep=timedelta(hours=config.keep_hours),
        per_topic=config.max_per_topic,
        keepalive_seconds=config.keepalive_seconds,
        relay=relay,
    )


def build_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    run_dispatcher: bool = True,
    delivers_only: bool = False,
) -> Runtime:
    """Build the runtime of one server or worker process (``delivers_only``: a worker, which
    accepts nothing and, on SQLite, watches the store for the runs other processes commit)."""
    engine = engine or engine_for(settings)
    channels = build_channels(settings)
    inbox = build_inbox(settings, engine)
    channels[InboxChannel.name] = InboxChannel(inbox)
    destinations = Destinations.from_settings(settings, channels)
    registry = TaskRegistry()
    register_delivery(registry)
    limits = {
        name: override.concurrency
        for name, override in settings.channels.items()
        if override.concurrency is not None
    }
    secrets = box_for_store(settings, engine)  # the key file is made on first start
    if secrets.path is not None and engine.dialect.name == "postgresql":
        log.warning(
            "the store is shared, but the secret key comes from this machine's %s: every "
            "process sharing the store needs the same key (set NOTIFYD_SECRET_KEY)",
            secrets.path,
        )
    delivery = DeliveryContext(engine, channels, destinations=destinations, secrets=secrets)
    store_file = StoreFile(engine)
    tracker = Tracker(
        engine,
        registry,
        config=DispatcherConfig(
            concurrency=settings.concurrency,
            queue_concurrency=limits,
            lease_seconds=settings.lease_seconds,
            sweep_seconds=settings.sweep_seconds,
            poll_seconds=settings.poll_seconds,
            grace_seconds=settings.grace_seconds,
        ),
        retry=retry_policies(settings),
        extras={EXTRAS_KEY: delivery},
        run_dispatcher=run_dispatcher,
        # A worker's runs all come from other processes: on SQLite it watches for their commits.
        watch_store=delivers_only,
        # A commit that does not fsync takes microseconds: do it on the loop, not via a thread.
        inline_writes=settings.sqlite_synchronous in ("OFF", "NORMAL"),
        # The SQLite file deleted or replaced under us: no transaction commits into the lost
        # file, so nothing is answered 202 (or recorded as delivered) that would vanish.
        before_commit=store_file.check if store_file.path is not None else None,
        # Each run keeps the trace it was accepted under; its attempts join it (notifyd.tracing).
        trace_context=tracing.current_traceparent if settings.opentelemetry else None,
    )
    # The writer and the clock exist only now: the inbox's deletes and prunes go through them.
    inbox.write, inbox.clock = tracker.writer.run, tracker.clock
    metrics = Metrics(
        engine,
        in_flight=lambda: tracker.dispatcher.in_flight,
        clock=tracker.clock,
        subscribers=lambda: inbox.broker.subscribers,
        dropped=lambda: inbox.broker.dropped,
    )

    def observe_attempt(run: ClaimedRun, result: AttemptResult) -> None:
        metrics.observe_attempt(run, result)
        deliverylog.observe_attempt(run, result)

    tracker.dispatcher.on_attempt = observe_attempt
    if settings.opentelemetry:
        tracker.dispatcher.attempt_scope = tracing.attempt_spans()
    deliverylog.quiet_apprise()
    submitter = Submitter(
        channels,
        destinations,
        keys=IdempotencyKeys(engine),
        on_stored=delivery.remember,
        secrets=secrets,
        store_file=store_file,
        inbox_keep=inbox.keep,
    )
    return Runtime(
        settings,
        engine,
        channels,
        registry,
        tracker,
        delivery,
        metrics,
        submitter,
        inbox,
        destinations=destinations,
        store_file=store_file,
    )
