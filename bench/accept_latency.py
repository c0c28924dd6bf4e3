"""The seed's headline: how fast ``POST /v1/notifications`` answers when delivery takes 1 s.

One notifyd server (uvicorn subprocess) with a ``slow`` channel whose every delivery sleeps 1 s.
At a steady 200 requests/s over 16 keep-alive connections, the response latency of:
``POST /v1/notifications`` for the ``log`` channel (delivery instant), the same for the ``slow``
channel (delivery 1 s, while a backlog of 1 s deliveries runs in the same process), and
``POST /bench/inline``, which awaits the same 1 s delivery before answering (the baseline).
"""

from __future__ import annotations

import uvloop

from bench.load import LoadResult, post_request, run_load
from bench.support import BenchServer, row, title

DELIVERY_SECONDS = 1.0
CONNECTIONS = 16
RATE = 200.0
REQUESTS = 1000
INLINE_REQUESTS = 4 * CONNECTIONS


def body(channel: str) -> dict[str, str]:
    """A notification for one recipient."""
    return {"channel": channel, "to": "bench@example.com", "message": "Hello from the benchmark"}


def report(label: str, load: LoadResult) -> None:
    """Print one line: count, p50, p99, max."""
    row(
        label,
        f"{load.count:,}",
        f"{load.ms(0.5):,.1f} ms",
        f"{load.ms(0.99):,.1f} ms",
        f"{load.ms(1.0):,.1f} ms",
    )
    if load.errors or set(load.statuses) - {200, 202}:
        print(f"    answers: {load.describe_statuses()}")


def main() -> None:
    """Measure the three endpoints on one server and print their latencies and the ratios."""
    title(
        f"accept latency: delivery takes {DELIVERY_SECONDS:.0f} s; {RATE:.0f} req/s over "
        f"{CONNECTIONS} connections, loopback"
    )
    with BenchServer("notifyd", slow_seconds=DELIVERY_SECONDS) as server:

        def load(path: str, channel: str, requests: int, rate: float | None) -> LoadResult:
            request = post_request(server.port, path, body(channel))
            return uvloop.run(
                run_load(
                    server.port,
                    request,
                    connections=CONNECTIONS,
                    requests=requests,
                    rate=rate,
                    deadline=60,
                )
            )

        load("/v1/notifications", "log", 200, None)  # warm-up
        instant = load("/v1/notifications", "log", REQUESTS, RATE)
        slow = load("/v1/notifications", "slow", REQUESTS, RATE)
        # Each inline request holds its connection for the delivery: the rate cannot be met.
        inline = load("/bench/inline", "slow", INLINE_REQUESTS, None)
    row("endpoint", "requests", "p50", "p99", "max")
    report("notifyd POST, log channel (instant delivery)", instant)
    report("notifyd POST, delivery takes 1 s", slow)
    report("inline: awaits the 1 s delivery, then answers", inline)
    print(
        f"  ratio inline/notifyd: p50 {inline.ms(0.5) / slow.ms(0.5):,.0f}x, "
        f"p99 {inline.ms(0.99) / slow.ms(0.99):,.0f}x; notifyd slow/instant delivery: "
        f"p50 {slow.ms(0.5) / instant.ms(0.5):.2f}, p99 {slow.ms(0.99) / instant.ms(0.99):.2f}"
    )


if __name__ == "__main__":
    main()
