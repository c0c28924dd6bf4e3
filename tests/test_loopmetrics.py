"""The loop's counters and histograms expose exactly what prometheus-client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from notifyd.loopmetrics import LoopCounter, LoopHistogram

BUCKETS = (0.001, 0.01, 0.1, 1, 10, 86400)
VALUES = (0.0, 0.001, 0.0010001, 0.05, 1.0, 3.5, 86400.0, 1e9, 0.3)


def _text(*collectors: Collector) -> list[str]:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


def test_a_counter_exposes_what_prometheus_clients_counter_would() -> None:
    registry = CollectorRegistry()
    theirs = Counter("x_sent", "Sent, by channel.", ["channel", "outcome"], registry=registry)
    ours = LoopCounter("x_sent", "Sent, by channel.", ["channel", "outcome"])
    for labels, amount in ((("log", "ok"), 1), (("smtp", "ok"), 3), (("log", "ok"), 2.5)):
        theirs.labels(*labels).inc(amount)
        ours.inc(labels, amount)
    expected = [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]
    assert _text(ours) == expected
    assert 'x_sent_total{channel="log",outcome="ok"} 3.5' in expected


def test_a_histogram_exposes_what_prometheus_clients_histogram_would() -> None:
    registry = CollectorRegistry()
    theirs = Histogram("x_seconds", "How long.", ["channel"], buckets=BUCKETS, registry=registry)
    ours = LoopHistogram("x_seconds", "How long.", ["channel"], buckets=BUCKETS)
    for channel in ("log", "webhook"):
        for value in VALUES if channel == "log" else VALUES[:3]:
            theirs.labels(channel).observe(value)
            ours.child((channel,)).observe(value)
    theirs.labels("idle")  # a child asked for but never observed is shown, all zero
    ours.child(("idle",))
    expected = [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]
    assert _text(ours) == expected
    assert 'x_seconds_bucket{channel="log",le="0.001"} 2.0' in expected
    assert 'x_seconds_count{channel="idle"} 0.0' in expected
