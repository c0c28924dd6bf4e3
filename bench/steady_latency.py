"""Latency at a steady rate of half the validated route's capacity (issue 19's third goal).

The validated FastAPI route's capacity is measured first (32 connections, closed loop, as in
``accept_throughput``); then requests are sent at half that rate on a fixed schedule (open
loop: each latency counts from when its request was due, so a stall is charged for everything
queued behind it) to, in turn and repeated: the validated route; notifyd on SQLite delivering
to the log channel in the same process; notifyd on SQLite accepting only (its dispatcher off,
no worker: what the server's core costs with nothing delivering beside it; no goal of its
own); notifyd on SQLite with its dispatcher off and one ``notifyd worker`` delivering (the
server's core spent on accepting only); notifyd on PostgreSQL the same way. Printed: accept
p50/p99 and notifyd's p99 over validated's (goal: at most 2x), and publish-to-delivered
p50/p99, read from the log channel's lines (``delivered_at`` minus the notification's
``created_at``). A server whose capacity is below the rate answers below it ("answered/s")
and its latencies grow with the queue: that is the figure, not a fault of the generator (whose
late sends are counted). Also printed: the machine's CPU in use, and the server process's (its
share of one core, its CPU per request): a server near one core (its event loop runs all of
its Python on one thread) has a p99 that is its queue.
"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from dataclasses import dataclass, field

import uvloop

from bench.accept_throughput import BODY, CONNECTIONS, measure
from bench.load import LoadResult, post_request, run_load
from bench.support import BenchServer, machine_cpu_seconds, paired, row, spread, title
from bench.workers import (
    Process,
    count_lines,
    exit_on_sigterm,
    log_file,
    notifyd_worker,
    postgres_schema,
    read_deliveries,
    wait_for_lines,
)

STEADY_CONNECTIONS = 64  # spare connections, so the schedule never waits for a free one
SECONDS = 8.0
REPS = 2
FRACTION = 0.5
GOAL_P99 = 2.0
WIDTH = 20  # a figure with its spread


@dataclass
class Target:
    """One server under the steady load, and what each repetition saw."""

    label: str
    server: BenchServer
    path: str
    workers: list[Process] = field(default_factory=list)
    delivers: bool = True
    loads: list[LoadResult] = field(default_factory=list)
    delivered_p50: list[float] = field(default_factory=list)
    delivered_p99: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # the machine's CPU in use, 0-1, all cores
    server_busy: list[float] = field(default_factory=list)  # the server process's, 1 = one core
    server_us: list[float] = field(default_factory=list)  # its CPU per answered request
    missing: int = 0


def steady(target: Target, rate: float, requests: int) -> None:
    """One repetition: ``requests`` at ``rate``, then wait for their deliveries."""
    path = log_file(target.server.home)
    before = count_lines(path)
    request = post_request(target.server.port, target.path, BODY)
    cpu = machine_cpu_seconds()
    server_cpu = target.server.status().cpu_seconds
    load = uvloop.run(
        run_load(
            target.server.port,
            request,
            connections=STEADY_CONNECTIONS,
            requests=requests,
            rate=rate,
            from_schedule=True,
            deadline=requests / rate * 3 + 10,
        )
    )
    target.busy.append((machine_cpu_seconds() - cpu) / load.elapsed / (os.cpu_count() or 1))
    server_cpu = target.server.status().cpu_seconds - server_cpu
    target.server_busy.append(server_cpu / load.elapsed)
    target.server_us.append(server_cpu / max(load.count, 1) * 1e6)
    target.loads.append(load)
    if not target.delivers:
        return
    accepted = load.statuses.get(202, 0)
    seen = wait_for_lines(path, before + accepted, timeout=60, watch=target.workers)
    target.missing += before + accepted - seen
    deliveries = read_deliveries(path, skip=before)
    target.delivered_p50.append(deliveries.ms(0.5))
    target.delivered_p99.append(deliveries.ms(0.99))


def warm_up(target: Target) -> None:
    """A short closed-loop load (its deliveries waited for, so they stay out of the figures)."""
    path = log_file(target.server.home)
    request = post_request(target.server.port, target.path, BODY)
    load = uvloop.run(run_load(target.server.port, request, connections=CONNECTIONS, requests=500))
    if target.delivers:
        wait_for_lines(path, load.statuses.get(202, 0), timeout=60, watch=target.workers)


def p99s(target: Target) -> list[float]:
    """Each repetition's accept p99, in milliseconds."""
    return [load.ms(0.99) for load in target.loads]


def report(targets: list[Target], baseline: Target) -> None:
    """Print every target's figures with their spread over the repetitions."""
    row(
        "server",
        "answered/s",
        "accept p50",
        "accept p99",
        "p99 vs valid.",
        "delivered p50",
        "delivered p99",
        width=WIDTH,
    )
    for target in targets:
        p99_ratios = paired(p99s(target), p99s(baseline))
        row(
            target.label,
            spread([load.rate for load in target.loads], "{:,.0f}"),
            spread([load.ms(0.5) for load in target.loads], "{:.1f}", " ms"),
            spread([load.ms(0.99) for load in target.loads], "{:.1f}", " ms"),
            "1 (baseline)" if target is baseline else spread(p99_ratios, "{:.2f}", "x"),
            spread(target.delivered_p50, "{:.1f}", " ms") if target.delivers else "-",
            spread(target.delivered_p99, "{:.1f}", " ms") if target.delivers else "-",
            width=WIDTH,
        )
        problems = [load.describe_statuses() for load in target.loads if load.errors]
        problems.append(
            f"machine CPU in use meanwhile (every process): {spread(target.busy, '{:.0%}')}; "
            f"the server's: {spread(target.server_busy, '{:.0%}')} of one core, "
            f"{spread(target.server_us, '{:,.0f}', ' us')} a request"
        )
        tails = [load.tail_windows() for load in target.loads]
        problems.append(
            "the slowest 1% fell in "
            + ", ".join(f"{held:,} of {windows:,}" for held, windows, _ in tails)
            + " stretches of 50 ms, at most "
            + ", ".join(f"{most:,}" for _, _, most in tails)
            + " in one (few stretches: a stall; many: a queue)"
        )
        if any(load.late for load in target.loads):
            late = ", ".join(f"{load.late:,} of {load.count:,}" for load in target.loads)
            problems.append(
                f"sent over 1 ms late (server behind, or generator short of CPU): {late}"
            )
        if target.missing:
            problems.append(f"{target.missing} accepted but not delivered within 60 s")
        for problem in problems:
            print(f"    {problem}")


def main(reps: int = REPS, seconds: float = SECONDS, fraction: float = FRACTION) -> None:
    """Each repetition: the validated route's capacity, then every target at ``fraction`` of it."""
    title(
        f"steady latency: {fraction:g} of the validated route's capacity (measured each rep), "
        f"open loop, {STEADY_CONNECTIONS} connections, {reps} x {seconds:.0f} s interleaved"
    )
    with ExitStack() as stack:
        bare = stack.enter_context(BenchServer("bare"))
        validated = Target("validated FastAPI route (no store)", bare, "/validated", delivers=False)
        sqlite = Target(
            "notifyd, SQLite, delivering in process",
            stack.enter_context(BenchServer("notifyd")),
            "/v1/notifications",
        )
        # No goal of its own: what the server's core costs with nothing delivering beside it.
        accept_only = Target(
            "notifyd, SQLite, accepting only",
            stack.enter_context(BenchServer("notifyd", dispatch=False)),
            "/v1/notifications",
            delivers=False,
        )
        sqlite_server = stack.enter_context(BenchServer("notifyd", dispatch=False))
        sqlite_worker = stack.enter_context(notifyd_worker(sqlite_server.home))
        sqlite_split = Target(
            "notifyd, SQLite, one `notifyd worker`",
            sqlite_server,
            "/v1/notifications",
            workers=[sqlite_worker],
        )
        url = stack.enter_context(postgres_schema("bench_steady"))
        pg_server = BenchServer("notifyd", dispatch=False)
        pg_server.env["NOTIFYD_DATABASE_URL"] = url
        stack.enter_context(pg_server)  # migrates the schema before the worker checks it
        worker = stack.enter_context(notifyd_worker(pg_server.home, url))
        postgres = Target(
            "notifyd, PostgreSQL, one `notifyd worker`",
            pg_server,
            "/v1/notifications",
            workers=[worker],
        )
        targets = [validated, sqlite, accept_only, sqlite_split, postgres]
        for target in targets:
            warm_up(target)
        capacities = []
        for _ in range(reps):
            capacity = measure(bare, "/validated", warmup=1000, requests=10000).load.rate
            capacities.append(capacity)
            for target in targets:
                steady(target, capacity * fraction, int(capacity * fraction * seconds))
    rates = [capacity * fraction for capacity in capacities]
    print(
        f"  validated's capacity {spread(capacities, '{:,.0f}', '/s')}; sent at "
        f"{spread(rates, '{:,.0f}', '/s')}"
    )
    report(targets, validated)
    for target in (sqlite, sqlite_split, postgres):
        p99 = paired(p99s(target), p99s(validated))
        print(
            f"  {target.label}: accept p99 {spread(p99, '{:.2f}', 'x')} validated's "
            f"(goal <= {GOAL_P99:.0f}x)"
        )


def cli() -> None:
    """``python -m bench.steady_latency [--reps N] [--seconds S] [--fraction F]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=REPS, help="interleaved repetitions")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="seconds per steady run")
    parser.add_argument(
        "--fraction", type=float, default=FRACTION, help="of the validated route's capacity"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    main(args.reps, args.seconds, args.fraction)


if __name__ == "__main__":
    cli()
