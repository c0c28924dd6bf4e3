"""Accepted notifications per second beside FastAPI itself, 32 connections, same run.

Five servers under the same uvicorn settings (uvloop, httptools, no access log), one at a time:
a bare FastAPI route returning JSON (the framework's floor); a FastAPI route taking notifyd's
own ``NotificationCreate`` body and answering its 202 shape with no store ("validated": the
real ceiling); notifyd accepting ``POST /v1/notifications`` for the ``log`` channel while its
dispatcher delivers them (the real figure, with how many runs were still waiting when the load
ended), on SQLite and then on PostgreSQL (``BENCH_POSTGRES_URL``, a fresh schema); and notifyd
on SQLite with the dispatcher off (the accept path alone). Goals (issue 19): delivering on
SQLite >= 0.8x validated's requests/s with p99 <= 1.5x its p99; on PostgreSQL >= 0.5x. The
server's CPU time per request and the generator's own CPU share are printed so that a
saturated generator would show. One run of each: ``bench.store_ab`` repeats them interleaved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import uvloop

from bench.load import LoadResult, post_request, run_load
from bench.support import BenchServer, row, title
from bench.workers import postgres_schema

CONNECTIONS = 32
BODY = {
    "channel": "log",
    "to": "bench@example.com",
    "subject": "Benchmark",
    "message": "Hello from notifyd's throughput benchmark",
}


@dataclass(frozen=True)
class Measured:
    """One load run and what it cost the server and the generator."""

    load: LoadResult
    server_cpu: float
    client_cpu: float


def measure(server: BenchServer, path: str, *, warmup: int, requests: int) -> Measured:
    """Warm up, then send ``requests`` requests with CONNECTIONS connections."""
    request = post_request(server.port, path, BODY)
    uvloop.run(run_load(server.port, request, connections=CONNECTIONS, requests=warmup))
    before, client_before = server.status().cpu_seconds, time.process_time()
    load = uvloop.run(
        run_load(server.port, request, connections=CONNECTIONS, requests=requests, deadline=40)
    )
    server_cpu = server.status().cpu_seconds - before
    return Measured(load, server_cpu, time.process_time() - client_before)


def report(label: str, m: Measured, ceiling: Measured | None) -> None:
    """Print one server's line: its figures and its ratio to ``ceiling`` (validated)."""
    n = max(m.load.count, 1)
    ratio = f"{m.load.rate / ceiling.load.rate:.2f}x" if ceiling else "1 (baseline)"
    row(
        label,
        f"{m.load.rate:,.0f}/s",
        f"{m.load.ms(0.5):.1f} ms",
        f"{m.load.ms(0.99):.1f} ms",
        f"{m.server_cpu / n * 1e6:,.0f} us",
        f"{m.client_cpu / m.load.elapsed:.0%}",
        ratio,
    )
    if m.load.errors or set(m.load.statuses) - {200, 202}:
        print(f"    answers: {m.load.describe_statuses()}")


def main() -> None:
    """Run the three servers in turn and print the table."""
    title(f"accept throughput: POST, {CONNECTIONS} connections, closed loop, loopback")
    row("server", "requests/s", "p50", "p99", "server CPU/req", "generator", "vs validated")
    with BenchServer("bare") as bare:
        floor = measure(bare, "/bare", warmup=3000, requests=30000)
        validated = measure(bare, "/validated", warmup=3000, requests=20000)
    report("bare FastAPI endpoint returning JSON", floor, validated)
    report("validated: NotificationCreate in, 202 out", validated, None)
    full, waiting = delivering(None)
    report("notifyd POST /v1/notifications (delivering)", full, validated)
    with postgres_schema("bench_accept") as url:
        on_postgres, waiting_on_postgres = delivering(url)
    report("notifyd on PostgreSQL (delivering)", on_postgres, validated)
    print(f"    runs still waiting when the load ended: {waiting:,} on SQLite, "
          f"{waiting_on_postgres:,} on PostgreSQL")  # fmt: skip
    with BenchServer("notifyd", dispatch=False) as server:
        accept = measure(server, "/v1/notifications", warmup=1000, requests=15000)
    report("notifyd, accept path only (dispatcher off)", accept, validated)
    v = validated.load
    print(
        f"  notifyd delivering: {full.load.rate / v.rate:.2f}x validated (goal >= 0.8), "
        f"p99 {full.load.ms(0.99) / v.ms(0.99):.1f}x validated's (goal <= 1.5); "
        f"on PostgreSQL {on_postgres.load.rate / v.rate:.2f}x (goal >= 0.5); "
        f"accept path alone {accept.load.rate / v.rate:.2f}x; "
        f"vs bare: {full.load.rate / floor.load.rate:.2f}x and "
        f"{accept.load.rate / floor.load.rate:.2f}x. "
        "'generator' is the load generator's share of one core"
    )


def delivering(url: str | None) -> tuple[Measured, int]:
    """notifyd delivering while it accepts, on SQLite (``url`` None) or that PostgreSQL; the
    runs still waiting when the load ended (a dispatcher that fell behind would flatter the
    figure)."""
    server = BenchServer("notifyd")
    if url is not None:
        server.env["NOTIFYD_DATABASE_URL"] = url
    with server:
        measured = measure(server, "/v1/notifications", warmup=1000, requests=15000)
        runs = server.get("/bench/stats?runs=true")["runs"]
    return measured, sum(n for status, n in runs.items() if status != "succeeded")


if __name__ == "__main__":
    main()
