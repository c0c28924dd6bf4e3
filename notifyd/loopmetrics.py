"""Counters and histograms for the hot path: plain numbers, exposed as prometheus-client families.

prometheus-client's ``Counter`` and ``Histogram`` take a lock for every change, so that any
thread may count: 1 us an increment and 2 us an observation, and each accepted and delivered
notification made six of them. The figures counted here are changed only by the event loop's
thread (accepting, recording attempts), so they are kept as plain numbers and turned into
prometheus-client's metric families when scraped; the text exposed is the same. A scrape from
another thread copies each child's buckets first, so a histogram's count and buckets agree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]
_go_text: Callable[[float], str] = floatToGoString  # a bound as prometheus-client writes it


class LoopCounter(Collector):
    """A labelled counter, one total per label values; add to it from one thread."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.totals: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1) -> None:
        """Add ``amount`` to the total of ``labels``."""
        totals = self.totals
        totals[labels] = totals.get(labels, 0) + amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The totals, as prometheus-client's ``Counter`` exposes them (``*_total``)."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, total in list(self.totals.items()):
            family.add_metric(list(labels), total)
        yield family


class HistogramChild:
    """One label set's buckets (not cumulative: an observation counts in its own bucket only)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last for values above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopHistogram(Collector):
    """A labelled histogram; observe from one thread (through ``child``)."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self._shown = [_go_text(bound) for bound in self.bounds] + ["+Inf"]
        self.children: dict[Labels, HistogramChild] = {}

    def child(self, labels: Labels) -> HistogramChild:
        """The buckets of ``labels`` (made, and exposed from then on, when first asked for)."""
        found = self.children.get(labels)
        if found is None:
            found = self.children[labels] = HistogramChild(self.bounds)
        return found

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """Cumulative buckets, count and sum, as prometheus-client's ``Histogram`` exposes them."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, child in list(self.children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, running = [], 0
            for shown, count in zip(self._shown, counts, strict=True):
                running += count
                cumulative.append((shown, float(running)))
            family.add_metric(list(labels), cumulative, total)
        yield family
