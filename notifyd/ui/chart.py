"""Attempts by outcome over time, as the geometry of an inline SVG stacked bar chart.

The template draws ``<rect>`` elements from these numbers: no script, no style attribute (the
page's CSP allows neither inline), colours by CSS class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

from notifyd.tracking.admin import Histogram

WIDTH = 600
HEIGHT = 120
# Bottom to top; the class names match ui.css.
SERIES = ("succeeded", "transient_error", "permanent_error", "interrupted", "running")


@dataclass(frozen=True)
class Bar:
    """One stacked segment."""

    x: float
    y: float
    width: float
    height: float
    outcome: str
    title: str


@dataclass(frozen=True)
class Chart:
    """A chart's bars, its peak, its axis labels and its totals by outcome."""

    title: str
    bars: list[Bar]
    peak: int
    start_label: str
    end_label: str
    totals: dict[str, int]
    width: int = WIDTH
    height: int = HEIGHT


def build_chart(title: str, histogram: Histogram, *, label_format: str = "%H:%M") -> Chart:
    """Stack each bucket's outcomes into bars scaled to the busiest bucket."""
    n = histogram.buckets
    totals_per_bucket = [
        sum(histogram.counts.get(outcome, [0] * n)[i] for outcome in SERIES) for i in range(n)
    ]
    peak = max(totals_per_bucket, default=0)
    slot = WIDTH / max(n, 1)
    bars: list[Bar] = []
    for i in range(n):
        y = float(HEIGHT)
        start = histogram.since + timedelta(seconds=i * histogram.bucket_seconds)
        for outcome in SERIES:
            count = histogram.counts.get(outcome, [0] * n)[i]
            if not count or not peak:
                continue
            h = HEIGHT * count / peak
            y -= h
            bars.append(
                Bar(
                    x=round(i * slot + slot * 0.1, 2),
                    y=round(y, 2),
                    width=round(slot * 0.8, 2),
                    height=round(h, 2),
                    outcome=outcome,
                    title=f"{start.astimezone(UTC):%H:%M} UTC: {count} {outcome.replace('_', ' ')}",
                )
            )
    end = histogram.since + timedelta(seconds=n * histogram.bucket_seconds)
    return Chart(
        title=title,
        bars=bars,
        peak=peak,
        start_label=f"{histogram.since.astimezone(UTC):{label_format}}",
        end_label=f"{end.astimezone(UTC):{label_format}} UTC",
        totals={o: sum(histogram.counts.get(o, [])) for o in SERIES},
    )
