"""What observability costs the accept path: notifyd's ``POST /v1/notifications`` (dispatcher
off: the accept path alone) with no metrics observed, with its metrics (the default), and with
``opentelemetry = true`` and an SDK tracer provider recording every span (batched to an
exporter that keeps nothing: the cost of tracing in the process, not of a collector), each as
a ratio to the first, measured in the same run, interleaved over REPS rounds, each round in
another order. The server's CPU per request is the steadier figure on a busy machine:
requests/s also moves with whatever else the machine runs.

Tracing on also takes the request off notifyd's accept lane (``notifyd/api/fastaccept.py``):
FastAPI's own layers and its telemetry see every request, so that cost is in the figure;
``opentelemetry = true`` with no tracer provider configured (nothing recorded) shows that part
alone.
"""

from __future__ import annotations

import statistics

from bench.accept_throughput import Measured, measure
from bench.support import BenchServer, row, title

REPS = 3
CASES = {
    "metrics off (nothing observed)": ("--no-metrics",),
    "metrics on (the default)": (),
    "opentelemetry on, no tracer provider": ("--opentelemetry",),
    "metrics and tracing on (spans recorded)": ("--tracing",),
}


def main() -> None:
    """Measure each case REPS times, interleaved; print medians and ratios to metrics off."""
    title("observability's cost: accept path alone (dispatcher off), 32 connections, loopback")
    runs: dict[str, list[Measured]] = {name: [] for name in CASES}
    names = list(CASES)
    for rep in range(REPS):
        # Each round starts with another case: no case always runs first (or last).
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            extra = CASES[name]
            with BenchServer("notifyd", dispatch=False, extra=extra) as server:
                runs[name].append(measure(server, "/v1/notifications", warmup=1000, requests=10000))
    row("accept path", "requests/s", "p99", "server CPU/req", "rate vs off", "CPU vs off")

    def cpu_of(measured: list[Measured]) -> float:
        return statistics.median(m.server_cpu / max(m.load.count, 1) for m in measured)

    off = runs["metrics off (nothing observed)"]
    base_rate, base_cpu = statistics.median(m.load.rate for m in off), cpu_of(off)
    for name, measured in runs.items():
        rate = statistics.median(m.load.rate for m in measured)
        p99 = statistics.median(m.load.ms(0.99) for m in measured)
        cpu = cpu_of(measured)
        row(
            name,
            f"{rate:,.0f}/s",
            f"{p99:.1f} ms",
            f"{cpu * 1e6:,.0f} us",
            f"{rate / base_rate:.2f}x",
            f"{cpu / base_cpu:.2f}x",
        )
        bad = [m for m in measured if m.load.errors or set(m.load.statuses) - {202}]
        if bad:
            print(f"    answers: {bad[0].load.describe_statuses()}")


if __name__ == "__main__":
    main()
