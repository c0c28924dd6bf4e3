"""Draining on PostgreSQL: runs/s with 1 and 2 ``notifyd worker`` processes, and what each run
costs the PostgreSQL server.

Each measurement gets a fresh schema: a notifyd server with its dispatcher off accepts N
notifications for the log channel, then the workers are started and deliver them; runs/s is
counted between the first delivered line and the last (the workers' start-up left out).
PostgreSQL's CPU per run is read from /proc twice: the backends of the workers' own
connections (found by their ``application_name``: the store's share of the work itself), and
every process named ``postgres*`` (with the WAL writer and checkpointer, but also other
clients' backends on a shared machine); and the workers' own CPU per run, from their first
delivery on (their start-up left out). Baseline in the same run: one ``notifyd worker`` on
SQLite draining the same N. Repetitions are interleaved.
"""

from __future__ import annotations

import argparse
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field

import uvloop

from bench.accept_throughput import BODY, CONNECTIONS
from bench.load import post_request, run_load
from bench.support import BenchServer, paired, proc_status, row, spread, title
from bench.workers import (
    Process,
    backend_cpu_seconds,
    count_lines,
    exit_on_sigterm,
    log_file,
    notifyd_worker,
    postgres_cpu_seconds,
    postgres_schema,
    read_deliveries,
    wait_for_lines,
    with_query,
)

RUNS = 6000
REPS = 2
DRAIN_TIMEOUT = 90.0


@dataclass
class Setup:
    """One store and worker count, and each repetition's figures."""

    label: str
    workers: int
    postgres: bool
    rates: list[float] = field(default_factory=list)
    backend_us: list[float] = field(default_factory=list)  # our backends' CPU per run
    server_us: list[float] = field(default_factory=list)  # every postgres process, per run
    worker_us: list[float] = field(default_factory=list)  # the workers' CPU per run
    undelivered: int = 0


def workers_cpu(workers: list[Process]) -> float:
    """The CPU seconds the worker processes have used so far."""
    return sum(proc_status(w.proc.pid).cpu_seconds for w in workers if w.proc is not None)


def measure(setup: Setup, runs: int) -> None:
    """Queue ``runs`` deliveries, then time ``setup.workers`` workers draining them."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema("bench_drain")) if setup.postgres else None
        server = BenchServer("notifyd", dispatch=False)
        if url:
            server.env["NOTIFYD_DATABASE_URL"] = url
        stack.enter_context(server)
        request = post_request(server.port, "/v1/notifications", BODY)
        load = uvloop.run(
            run_load(server.port, request, connections=CONNECTIONS, requests=runs, deadline=60)
        )
        queued = load.statuses.get(202, 0)
        name = f"bench_drain_{uuid.uuid4().hex[:8]}"
        worker_url = with_query(url, application_name=name) if url else None
        server_before = postgres_cpu_seconds()
        workers = [
            stack.enter_context(notifyd_worker(server.home, worker_url))
            for _ in range(setup.workers)
        ]
        path = log_file(server.home)
        # The workers' own CPU from their first delivery on (their start-up is not the drain).
        wait_for_lines(path, 1, timeout=DRAIN_TIMEOUT, watch=workers)
        first, cpu_before = count_lines(path), workers_cpu(workers)
        seen = wait_for_lines(path, queued, timeout=DRAIN_TIMEOUT, watch=workers)
        worker_cpu = workers_cpu(workers) - cpu_before
        server_cpu = postgres_cpu_seconds() - server_before
        backends = backend_cpu_seconds(name) if url else 0.0
        rate = read_deliveries(path).rate if seen else float("nan")  # before the data dir goes
    setup.undelivered += max(0, queued - seen)
    setup.rates.append(rate)
    if seen > first:
        setup.worker_us.append(worker_cpu / (seen - first) * 1e6)
    if url and seen:
        setup.backend_us.append(backends / seen * 1e6)
        setup.server_us.append(server_cpu / seen * 1e6)


def main(reps: int = REPS, runs: int = RUNS) -> None:
    """SQLite with one worker, PostgreSQL with one and two, ``reps`` times interleaved."""
    title(
        f"drain on PostgreSQL: {runs:,} log-channel runs queued, then drained by "
        f"`notifyd worker` processes; {reps} interleaved reps"
    )
    setups = [
        Setup("SQLite, 1 worker (baseline)", 1, postgres=False),
        Setup("PostgreSQL, 1 worker", 1, postgres=True),
        Setup("PostgreSQL, 2 workers", 2, postgres=True),
    ]
    for _ in range(reps):
        for setup in setups:
            measure(setup, runs)
    row(
        "store, workers",
        "runs/s",
        "vs SQLite",
        "workers CPU/run",
        "PG backends/run",
        "all postgres/run",
        width=20,
    )
    for setup in setups:
        row(
            setup.label,
            spread(setup.rates, "{:,.0f}"),
            spread(paired(setup.rates, setups[0].rates), "{:.2f}", "x"),
            spread(setup.worker_us, "{:,.0f}", " us"),
            spread(setup.backend_us, "{:,.0f}", " us") if setup.postgres else "-",
            spread(setup.server_us, "{:,.0f}", " us") if setup.postgres else "-",
            width=20,
        )
        if setup.undelivered:
            print(f"    {setup.undelivered} queued runs not delivered within {DRAIN_TIMEOUT:.0f} s")
    scale = spread(paired(setups[2].rates, setups[1].rates), "{:.2f}", "x")
    print(
        f"  2 workers / 1 worker on PostgreSQL, per rep: {scale}; 'PG backends' is the CPU of the "
        "workers' own connections, 'all postgres' every postgres process (others' too)"
    )


def cli() -> None:
    """``python -m bench.drain_postgres [--reps N] [--runs N]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=REPS, help="interleaved repetitions")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs queued per measurement")
    args = parser.parse_args()
    exit_on_sigterm()
    main(args.reps, args.runs)


if __name__ == "__main__":
    cli()
