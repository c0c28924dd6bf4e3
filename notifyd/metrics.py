"""Prometheus metrics for one process: what was accepted, how attempts end, what is waiting.

Each process has its own registry (no global state): counters and histograms describe this
process; the queue figures are read from the shared store when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from notifyd.models import NotificationAccepted
from notifyd.tracking import admin
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.outcomes import AttemptResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class QueueCollector(Collector):
    """Runs waiting or running, and how overdue the oldest due run is, read on each scrape."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Two indexed queries on the run table."""
        now = self.clock()
        with self.engine.connect() as conn:
            figures = admin.queue_figures(conn, now=now)
        runs = GaugeMetricFamily(
            "notifyd_runs", "Runs waiting or running, in the whole store.", labels=["status"]
        )
        for status, count in figures.active.items():
            runs.add_metric([status], count)
        yield runs
        oldest = figures.oldest_due_at
        yield GaugeMetricFamily(
            "notifyd_oldest_due_run_age_seconds",
            "How long the oldest due run has been waiting for a worker (0 when none is due).",
            value=(now - oldest).total_seconds() if oldest is not None else 0.0,
        )


class Metrics:
    """The process's metrics and their registry."""

    def __init__(
        self, engine: Engine, *, in_flight: Callable[[], int], clock: Callable[[], datetime]
    ) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "notifyd_notifications_accepted",
            "Notifications accepted (202) by this process.",
            ["channel"],
            registry=self.registry,
        )
        self.runs_created = Counter(
            "notifyd_runs_created",
            "Delivery runs created by this process (one per recipient).",
            ["channel"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "notifyd_attempts",
            "Attempts finished by this process, by channel and outcome.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "notifyd_attempt_duration_seconds",
            "How long attempts took, by channel.",
            ["channel"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        Gauge(
            "notifyd_runs_in_flight", "Runs this process is executing now.", registry=self.registry
        ).set_function(in_flight)
        self.registry.register(QueueCollector(engine, clock))
        # The labelled children, looked up once (``labels()`` costs more than ``inc()``); the
        # keys are channel names and outcomes, so these stay small.
        self._accepted_children: dict[str, tuple[Counter, Counter]] = {}
        self._attempt_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def observe_accepted(self, accepted: NotificationAccepted) -> None:
        """Count a newly accepted notification (not a replay)."""
        channel = (accepted.tasks[0].channel if accepted.tasks else None) or "-"
        children = self._accepted_children.get(channel)
        if children is None:
            children = (self.accepted.labels(channel), self.runs_created.labels(channel))
            self._accepted_children[channel] = children
        children[0].inc()
        children[1].inc(len(accepted.tasks))

    def observe_attempt(self, run: ClaimedRun, result: AttemptResult) -> None:
        """Count a finished attempt and its duration."""
        key = (run.queue or "-", result.outcome.value)
        children = self._attempt_children.get(key)
        if children is None:
            children = (self.attempts.labels(*key), self.attempt_seconds.labels(key[0]))
            self._attempt_children[key] = children
        children[0].inc()
        children[1].observe(result.duration_ms / 1000)

    def render(self) -> bytes:
        """The exposition text (reads the store for the queue figures)."""
        return generate_latest(self.registry)
