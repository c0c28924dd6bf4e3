"""Prometheus metrics for one process: what was accepted, how attempts end, what is waiting.

Each process has its own registry (no global state): counters and histograms describe this
process; the store-wide figures (``notifyd_runs``, ``notifyd_runs_due``, the oldest due run's
age) are read from the run tally and one index seek when scraped, never a scan of the runs.
No ``_created`` series are exposed (prometheus-client's default doubles every counter), and
every label's values are bounded: channels, outcomes, endpoints, statuses, error classes.
docs/metrics.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from notifyd.loopmetrics import HistogramChild, LoopCounter, LoopHistogram
from notifyd.models import NotificationAccepted
from notifyd.tracking import admin
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.models import DUE, RunStatus
from notifyd.tracking.outcomes import AttemptResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = ("api", "ntfy", "gotify", "alertmanager", "grafana")
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# An accept is a commit away from its answer: milliseconds, and seconds when the store stalls.
_ACCEPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Accept to delivered spans retries: from a fraction of a second to hours.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
# Error classes are exception class names (bounded by the code); past this many, "other".
MAX_ERROR_CLASSES = 50


class StoreCollector(Collector):
    """Runs by channel and status, runs due by channel and the oldest due run's age, read on
    each scrape: a sum over the run tally and one seek on the due index."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the tally and the due index."""
        now = self.clock()
        with self.engine.connect() as conn:
            figures = admin.queue_figures(conn, now=now)
        runs = GaugeMetricFamily(
            "notifyd_runs",
            "Runs in the whole store, by channel and status (from the run tally).",
            labels=["channel", "status"],
        )
        due = GaugeMetricFamily(
            "notifyd_runs_due",
            "Runs waiting for a worker (queued or retrying, scheduled ones included), by channel.",
            labels=["channel"],
        )
        for channel, counts in sorted(figures.by_queue.items()):
            for status in RunStatus:
                runs.add_metric([channel, status.value], counts.get(status.value, 0))
            due.add_metric([channel], sum(counts.get(s.value, 0) for s in DUE))
        yield runs
        yield due
        oldest = figures.oldest_due_at
        yield GaugeMetricFamily(
            "notifyd_oldest_due_run_age_seconds",
            "How long the oldest due run has been waiting for a worker (0 when none is due).",
            value=max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0,
        )


class _DroppedSubscribers(Collector):
    """The broker's own count of subscribers dropped for reading too slowly, as a counter."""

    def __init__(self, dropped: Callable[[], int]) -> None:
        self.dropped = dropped

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The count now."""
        yield CounterMetricFamily(
            "notifyd_subscribers_dropped",
            "Subscribers this process dropped because they fell too far behind (they reconnect).",
            value=self.dropped(),
        )


class _WithoutCreated(Collector):
    """The registry's families without their ``_created`` samples (per registry, where
    ``prometheus_client.disable_created_metrics()`` would change every registry of the process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        """Each family as collected, less its ``*_created`` samples."""
        for family in self.registry.collect():
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family


class Metrics:
    """The process's metrics and their registry."""

    def __init__(
        self,
        engine: Engine,
        *,
        in_flight: Callable[[], int],
        clock: Callable[[], datetime],
        subscribers: Callable[[], int] = lambda: 0,
        dropped: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        # The hot path's figures: changed only on the event loop (see notifyd.loopmetrics).
        self.accepted = LoopCounter(
            "notifyd_notifications_accepted",
            "Notifications accepted (202) by this process, by channel.",
            ["channel"],
        )
        self.runs_created = LoopCounter(
            "notifyd_runs_created",
            "Delivery runs created by this process (one per recipient), by channel.",
            ["channel"],
        )
        self.accept_seconds = LoopHistogram(
            "notifyd_accept_duration_seconds",
            "Time from a validated request to its notification's durable commit, by endpoint.",
            ["endpoint"],
            buckets=_ACCEPT_BUCKETS,
        )
        self.attempts = LoopCounter(
            "notifyd_attempts",
            "Attempts finished by this process, by channel and outcome.",
            ["channel", "outcome"],
        )
        self.attempt_seconds = LoopHistogram(
            "notifyd_attempt_duration_seconds",
            "How long attempts took, by channel.",
            ["channel"],
            buckets=_DURATION_BUCKETS,
        )
        self.delivery_seconds = LoopHistogram(
            "notifyd_delivery_latency_seconds",
            "Time from a run's acceptance to its successful attempt's end, by channel.",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
        )
        for collector in (
            self.accepted,
            self.runs_created,
            self.accept_seconds,
            self.attempts,
            self.attempt_seconds,
            self.delivery_seconds,
        ):
            registry.register(collector)
        self.runs_failed = Counter(
            "notifyd_runs_failed",
            "Runs this process finally failed (no attempt left, or a permanent error), by "
            "channel and error class.",
            ["channel", "error"],
            registry=registry,
        )
        Gauge(
            "notifyd_runs_in_flight", "Runs this process is executing now.", registry=registry
        ).set_function(in_flight)
        Gauge(
            "notifyd_subscribers",
            "Live subscriptions to inbox topics held by this process (ntfy, Gotify, web inbox).",
            registry=registry,
        ).set_function(subscribers)
        registry.register(_DroppedSubscribers(dropped))
        registry.register(StoreCollector(engine, clock))
        self._exposed = _WithoutCreated(registry)
        # Every endpoint's accept times are exposed from the start, zero until it accepts.
        self._accept_children = {name: self.accept_seconds.child((name,)) for name in ENDPOINTS}
        self._attempt_children: dict[str, tuple[HistogramChild, HistogramChild]] = {}
        self._errors: set[str] = set()

    def observe_accepted(
        self, accepted: NotificationAccepted, *, endpoint: str = "api", seconds: float | None = None
    ) -> None:
        """Count a newly accepted notification (not a replay) and how long its accept took."""
        channel = ((accepted.tasks[0].channel if accepted.tasks else None) or "-",)
        self.accepted.inc(channel)
        self.runs_created.inc(channel, len(accepted.tasks))
        if seconds is not None:
            child = self._accept_children.get(endpoint)
            if child is None:  # endpoints are named in code: this stays small too
                child = self._accept_children[endpoint] = self.accept_seconds.child((endpoint,))
            child.observe(seconds)

    def observe_attempt(self, run: ClaimedRun, result: AttemptResult) -> None:
        """Count a finished attempt and its duration; a delivery's latency, a final failure."""
        channel = run.queue or "-"
        self.attempts.inc((channel, result.outcome.value))
        children = self._attempt_children.get(channel)
        if children is None:
            children = self._attempt_children[channel] = (
                self.attempt_seconds.child((channel,)),
                self.delivery_seconds.child((channel,)),
            )
        children[0].observe(result.duration_ms / 1000)
        if result.status is RunStatus.succeeded:
            if run.created_at is not None:
                latency = (result.finished_at - run.created_at).total_seconds()
                children[1].observe(max(latency, 0.0))
        elif result.status is RunStatus.failed:
            self.runs_failed.labels(channel, self._error_class(result.error_type)).inc()

    def _error_class(self, error_type: str | None) -> str:
        name = (error_type or "error")[:100]
        if name not in self._errors:
            if len(self._errors) >= MAX_ERROR_CLASSES:
                return "other"
            self._errors.add(name)
        return name

    def render(self) -> bytes:
        """The exposition text (reads the store for the store-wide figures)."""
        return generate_latest(self._exposed)
