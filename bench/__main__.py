"""``python -m bench``: every benchmark in turn (a few minutes on a 2-core machine)."""

from __future__ import annotations

import os
import platform
import time

from bench import (
    accept_latency,
    accept_throughput,
    bulk,
    cli_start,
    drain,
    drain_postgres,
    fanout,
    observability,
    relay,
    steady_latency,
    summaries,
)


def main() -> None:
    """Run the benchmarks in sequence and print their figures."""
    print(
        f"notifyd benchmarks: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; all traffic on 127.0.0.1"
    )
    started = time.monotonic()
    cli_start.main()
    accept_latency.main()
    accept_throughput.main()
    steady_latency.main()
    observability.main()
    drain.main()
    drain_postgres.main()
    summaries.main()
    fanout.main()
    relay.main()
    bulk.main()
    print(f"\ndone in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
