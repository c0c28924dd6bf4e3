"""Fan-out to live subscribers (issue 17): memory per idle SSE subscriber, publish-to-receive
latency at a steady 100 messages/s, and the accept rate while 1,000 subscribers are connected.

One real ``notifyd serve`` (SQLite) with an inbox topic; its subscribers (``GET /<topic>/sse``)
run in a process of their own (``bench/subscribers.py``: raw asyncio protocols, cheap enough
that the client does not take the server's CPU), the publisher and the accept load in this one.

1. Memory: the server's VmRSS with no subscriber, then with 100 and 1,000 idle ones connected.
   Target: 1,000 idle subscribers in under 100 MiB of extra RSS.
2. Latency: 1,000 messages published with ntfy's ``POST /<topic>`` at a steady 100/s, each
   carrying its send time, to 1,000 subscribers and then 100: publish-to-receive p50/p99 over
   every (message, subscriber) pair, and every pair that never arrived. Targets: p99 under
   100 ms with 1,000 subscribers; nothing missed.
3. Accept rate: ``POST /v1/notifications`` for the ``log`` channel, 32 connections, closed loop,
   with the 1,000 idle subscribers connected, beside the same server with none: five runs of
   each, alternately, the best of each compared (the machine is shared and drifts; the server's
   CPU per accept is printed too). Target: >= 0.9x.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvloop

from bench.accept_throughput import Measured, measure
from bench.load import LoadResult, run_load
from bench.support import ROOT, NotifydServe, Started, machine_cpu_seconds, mib, row, title

TOPIC = "fanout"
SUBSCRIBERS = (100, 1_000)
RATE = 100.0
MESSAGES = 1_000  # 10 s at RATE
PUBLISH_CONNECTIONS = 16  # enough to keep the rate when each answer takes 100 ms
COLLECT_SECONDS = 15.0  # after the last publish, for stragglers
ACCEPT_PATH = "/v1/notifications"
ACCEPT_REQUESTS = 6_000
# With the subscribers connected or not: alternately, balanced against a drift of the machine.
ACCEPT_ORDER = (False, True, True, False, False, True, True, False, False, True)
SETTLE_SECONDS = 1.0
# Every subscriber comes from 127.0.0.1; a subscriber may lag 10 s (at RATE) before it is dropped.
CONFIG = f"""
[inbox]
per_address = 2000
total = 2000
buffer = {int(RATE * 10)}

[destinations.{TOPIC}]
channel = "inbox"
to = ["{TOPIC}"]
"""
TARGET_MIB = 100
TARGET_P99_MS = 100.0
TARGET_ACCEPT_RATIO = 0.9


class SubscriberProcess(Started):
    """``python -m bench.subscribers``, driven one JSON line at a time (started when made)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.subscribers", "--port", str(port), "--topic", TOPIC],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(self) -> SubscriberProcess:
        """Already running: itself."""
        return self

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command; its answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the subscriber process ended ({self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def connect(self, n: int) -> dict[str, Any]:
        """Have ``n`` subscribers open; refuse to go on with fewer."""
        answer = self.ask("connect", n=n)
        if answer["open"] != n:
            raise RuntimeError(f"only {answer['open']} of {n} subscribers connected: {answer}")
        return answer

    def cpu(self) -> float:
        """The subscriber process's CPU seconds so far."""
        seconds: float = self.ask("cpu")["cpu_seconds"]
        return seconds

    def stop(self) -> None:
        """Let it close its subscribers and end; kill it if it does not."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # it closes its subscribers and ends
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def ntfy_publish(port: int, round_: int) -> Callable[[int], bytes]:
    """Message ``index`` of round ``round_`` as ntfy's ``POST /<topic>``, stamped when sent."""

    def request(index: int) -> bytes:
        body = f"fo {round_} {index} {time.monotonic_ns()}".encode()
        head = (
            f"POST /{TOPIC} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return request


@dataclass(frozen=True)
class Delivered:
    """One round of messages: what the subscribers saw and what it cost each side."""

    figures: dict[str, Any]
    publish: LoadResult
    server_cpu: float
    client_cpu: float
    others_cpu: float  # every other process of the machine (the publisher too)

    @property
    def elapsed(self) -> float:
        """From the first publish until the round was collected."""
        return float(self.figures["seconds"])


def deliver(server: NotifydServe, subs: SubscriberProcess, round_: int, count: int) -> Delivered:
    """Publish ``count`` messages at RATE to every open subscriber and collect what arrived."""
    subs.ask("expect", round=round_, count=count)
    server_before, client_before = server.status().cpu_seconds, subs.cpu()
    machine_before = machine_cpu_seconds()
    started = time.perf_counter()
    publish = uvloop.run(
        run_load(
            server.port,
            ntfy_publish(server.port, round_),
            connections=PUBLISH_CONNECTIONS,
            requests=count,
            rate=RATE,
            deadline=count / RATE + 30,
        )
    )
    figures = subs.ask("collect", within=COLLECT_SECONDS)
    figures["seconds"] = time.perf_counter() - started
    machine = machine_cpu_seconds() - machine_before
    server_cpu = server.status().cpu_seconds - server_before
    client_cpu = figures["cpu_seconds"] - client_before
    return Delivered(figures, publish, server_cpu, client_cpu, machine - server_cpu - client_cpu)


def memory(server: NotifydServe, subs: SubscriberProcess) -> None:
    """Connect 100, then 1,000 idle subscribers; print the server's extra RSS."""
    time.sleep(SETTLE_SECONDS)
    before = server.status().rss_kib
    row("idle subscribers", "RSS", "extra", "per subscr.", "connect", "target")
    row("none", mib(before))
    for n in SUBSCRIBERS:
        answer = subs.connect(n)
        time.sleep(SETTLE_SECONDS)
        rss = server.status().rss_kib
        extra = rss - before
        target = f"< {TARGET_MIB} MiB extra" if n == 1_000 else ""
        row(
            f"{n:,}",
            mib(rss),
            mib(extra),
            f"{extra / n:.1f} KiB",
            f"{answer['seconds']:.2f} s",
            target,
        )
    verdict = "met" if extra < TARGET_MIB * 1024 else "MISSED"
    print(f"  1,000 idle subscribers: {mib(extra)} extra (target < {TARGET_MIB} MiB: {verdict})")


def report_delivery(label: str, d: Delivered) -> None:
    """Print one round's line."""
    f = d.figures
    row(
        label,
        f"{f['p50_ms']:.1f} ms",
        f"{f['p99_ms']:.1f} ms",
        f"{f['max_ms']:.1f} ms",
        f"{f['missed']:,}/{f['due']:,}",
        f"{d.server_cpu / d.elapsed:.0%}",
        f"{d.client_cpu / d.elapsed:.0%}",
        f"{d.others_cpu / d.elapsed:.0%}",
    )
    if f["duplicates"] or f["ended"]:
        print(f"    {f['duplicates']} received twice, {f['ended']} streams ended")
    if d.publish.errors or set(d.publish.statuses) - {200}:
        print(f"    publish answers: {d.publish.describe_statuses()}")
    reads = max(f["reads"], 1)
    print(
        f"    way in (to the first subscriber) p50 {f['first_p50_ms']:.1f} ms, p99 "
        f"{f['first_p99_ms']:.1f} ms; fan-out (first to last) p50 {f['spread_p50_ms']:.1f} ms, "
        f"p99 {f['spread_p99_ms']:.1f} ms"
    )
    print(
        f"    {f['received'] / reads:.1f} messages per subscriber read, server CPU "
        f"{d.server_cpu / reads * 1e6:.0f} us per read; publish answered p50 "
        f"{d.publish.ms(0.5):.1f} ms, p99 {d.publish.ms(0.99):.1f} ms, {d.publish.rate:.0f}/s"
    )


def latency(server: NotifydServe, subs: SubscriberProcess) -> None:
    """Publish at RATE to 1,000 subscribers, then to 100; print the latencies."""
    row("subscribers", "p50", "p99", "max", "missed", "server CPU", "client CPU", "others")
    rounds: dict[int, Delivered] = {}
    for round_, n in enumerate(sorted(SUBSCRIBERS, reverse=True), start=1):
        if subs.ask("keep", n=n)["open"] != n:
            subs.connect(n)
        rounds[n] = deliver(server, subs, round_, MESSAGES)
        report_delivery(f"{n:,}, {MESSAGES:,} messages at {RATE:.0f}/s", rounds[n])
    big, small = rounds[1_000].figures, rounds[100].figures
    verdict = "met" if big["p99_ms"] < TARGET_P99_MS else "MISSED"
    missed = sum(r.figures["missed"] for r in rounds.values())
    print(
        f"  p99 with 1,000 subscribers: {big['p99_ms']:.1f} ms (target < {TARGET_P99_MS:.0f} ms: "
        f"{verdict}), {big['p99_ms'] / small['p99_ms']:.1f}x the p99 with 100; missed "
        f"{missed:,} (target 0). CPU: share of one core over the round (of {os.cpu_count()}); "
        "'others': every other process, the publisher too"
    )


def report_accept(label: str, m: Measured) -> None:
    """Print one accept run's line."""
    n = max(m.load.count, 1)
    row(
        label,
        f"{m.load.rate:,.0f}/s",
        f"{m.load.ms(0.5):.1f} ms",
        f"{m.load.ms(0.99):.1f} ms",
        f"{m.server_cpu / n * 1e6:,.0f} us",
    )
    if m.load.errors or set(m.load.statuses) - {202}:
        print(f"    answers: {m.load.describe_statuses()}")


def accept_rate(server: NotifydServe, subs: SubscriberProcess) -> None:
    """Accept runs without and with 1,000 idle subscribers, alternately; print the ratio."""
    row("accept runs, in order", "requests/s", "p50", "p99", "CPU/req")
    runs: list[tuple[bool, Measured]] = []
    for connected in ACCEPT_ORDER:
        if connected:
            subs.connect(max(SUBSCRIBERS))
        else:
            subs.ask("keep", n=0)
        time.sleep(SETTLE_SECONDS)
        m = measure(server, ACCEPT_PATH, warmup=500, requests=ACCEPT_REQUESTS)
        runs.append((connected, m))
        report_accept(f"{max(SUBSCRIBERS):,} idle subscribers" if connected else "none", m)

    def best(connected: bool) -> float:
        return max(m.load.rate for c, m in runs if c is connected)

    def overall(connected: bool) -> float:
        chosen = [m.load for c, m in runs if c is connected]
        return sum(load.count for load in chosen) / sum(load.elapsed for load in chosen)

    def cpu_per_request(connected: bool) -> float:
        return statistics.median(m.server_cpu / m.load.count for c, m in runs if c is connected)

    # The best run of each is the one other work on the machine disturbed least.
    ratio = best(True) / best(False)
    verdict = "met" if ratio >= TARGET_ACCEPT_RATIO else "MISSED"
    print(
        f"  accepted/s, best of {len(runs) // 2}: {best(True):,.0f}/s with 1,000 idle subscribers, "
        f"{best(False):,.0f}/s without: {ratio:.2f}x (target >= {TARGET_ACCEPT_RATIO}: "
        f"{verdict}); over all runs {overall(True) / overall(False):.2f}x. Server CPU per "
        f"accept (median): {cpu_per_request(True) * 1e6:.0f} us with them, "
        f"{cpu_per_request(False) * 1e6:.0f} us without "
        f"({cpu_per_request(False) / cpu_per_request(True):.2f}x)"
    )


def raise_open_files(wanted: int) -> None:
    """A thousand connections on each side need more descriptors than a default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def main() -> None:
    """Run the three measurements on one server and print them."""
    title(
        f"fan-out: SSE subscribers of one topic, `notifyd serve` on SQLite, {RATE:.0f} messages/s, "
        "loopback"
    )
    raise_open_files(4 * max(SUBSCRIBERS) + 256)
    with NotifydServe(CONFIG) as server, SubscriberProcess(server.port) as subs:
        # Warm every path measured (a few subscribers, a few messages, the accept load) so that
        # the memory measured next is the subscribers' alone.
        subs.connect(10)
        deliver(server, subs, 0, 50)
        subs.ask("keep", n=0)
        measure(server, ACCEPT_PATH, warmup=1000, requests=ACCEPT_REQUESTS)
        memory(server, subs)
        print()
        latency(server, subs)
        print()
        accept_rate(server, subs)


if __name__ == "__main__":
    main()
