"""Delivering on SQLite or PostgreSQL against the validated route, old code against new, interleaved.

``python -m bench.store_ab --store postgres --tree /path/to/old --tree .`` runs, for each of
``--reps`` repetitions, FastAPI's validated route (the ceiling) and then notifyd delivering to
the log channel from each tree in turn (the order alternates between repetitions), and prints
each run's requests/s, p99, server CPU per request and ratio to that repetition's validated
run, then the medians and spreads. On a shared machine throughput swings by up to 2x between
runs; ratios within a repetition and CPU per request are the steadier figures. PostgreSQL is
``BENCH_POSTGRES_URL`` (default the tests' database), a fresh schema per server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop
from sqlalchemy import create_engine, text

from bench.accept_throughput import BODY, CONNECTIONS, Measured, measure
from bench.load import post_request, run_load
from bench.support import BenchServer, row, title
from bench.workers import backend_cpu_seconds

POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the benchmark database, as a URL whose search_path points at it and
    whose connections are named after it (``backend_cpu`` finds them by that name)."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield (f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}&application_name={schema}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def backend_cpu(url: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving ``url``'s connections."""
    return backend_cpu_seconds(url.rsplit("application_name=", 1)[1]) if url else 0.0


def delivering(tree: Path, store: str, requests: int) -> tuple[Measured, int, float]:
    """notifyd from ``tree`` delivering while it accepts; the runs still waiting at the end;
    the PostgreSQL backends' CPU seconds meanwhile."""
    with _url(store) as url:
        server = BenchServer("notifyd")
        server.cwd = tree
        if url:
            server.env["NOTIFYD_DATABASE_URL"] = url
        with server:
            request = post_request(server.port, "/v1/notifications", BODY)
            uvloop.run(run_load(server.port, request, connections=CONNECTIONS, requests=1000))
            store_before = backend_cpu(url)
            measured = measure(server, "/v1/notifications", warmup=0, requests=requests)
            store_cpu = backend_cpu(url) - store_before
            runs = server.get("/bench/stats?runs=true")["runs"]
    return measured, sum(n for status, n in runs.items() if status != "succeeded"), store_cpu


@contextmanager
def _url(store: str) -> Iterator[str | None]:
    if store == "postgres":
        with postgres_schema() as url:
            yield url
    else:
        yield None


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    """Parse the flags, run the repetitions, print every run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tree", type=Path, action="append", help="a source tree (repeatable)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--requests", type=int, default=12000)
    args = parser.parse_args()
    trees: list[Path] = [tree.resolve() for tree in args.tree or [Path(".")]]
    title(f"delivering on {args.store} vs validated, {len(trees)} tree(s), {args.reps} reps")
    row("run", "requests/s", "p99", "CPU/req", "x validated", "p99 x val", "waiting", "PG CPU/req")
    ratios: dict[Path, list[float]] = {tree: [] for tree in trees}
    p99s: dict[Path, list[float]] = {tree: [] for tree in trees}
    cpus: dict[Path, list[float]] = {tree: [] for tree in trees}
    stores: dict[Path, list[float]] = {tree: [] for tree in trees}
    for rep in range(args.reps):
        with BenchServer("bare") as bare:
            validated = measure(bare, "/validated", warmup=2000, requests=args.requests)
        v = validated.load
        row(
            f"{rep}: validated",
            f"{v.rate:,.0f}/s",
            f"{v.ms(0.99):.1f} ms",
            f"{validated.server_cpu / max(v.count, 1) * 1e6:,.0f} us",
        )
        order = trees if rep % 2 == 0 else trees[::-1]
        for tree in order:
            m, waiting, store_cpu = delivering(tree, args.store, args.requests)
            n = max(m.load.count, 1)
            stores[tree].append(store_cpu / n * 1e6)
            ratio, p99 = m.load.rate / v.rate, m.load.ms(0.99) / v.ms(0.99)
            cpu = m.server_cpu / n * 1e6
            ratios[tree].append(ratio)
            p99s[tree].append(p99)
            cpus[tree].append(cpu)
            row(
                f"{rep}: {tree.name}",
                f"{m.load.rate:,.0f}/s",
                f"{m.load.ms(0.99):.1f} ms",
                f"{cpu:,.0f} us",
                f"{ratio:.2f}x",
                f"{p99:.1f}x",
                f"{waiting:,}",
                f"{store_cpu / n * 1e6:,.0f} us",
            )
            if m.load.errors or set(m.load.statuses) - {202}:
                print(f"    answers: {m.load.describe_statuses()}")
    print("  medians (min-max):")
    for tree in trees:
        print(
            f"    {tree.name}: x validated {_spread(ratios[tree])}, p99 x validated's "
            f"{_spread(p99s[tree])}, CPU/req {statistics.median(cpus[tree]):,.0f} us "
            f"({min(cpus[tree]):,.0f}-{max(cpus[tree]):,.0f})"
            + (f", PG CPU/req {statistics.median(stores[tree]):,.0f} us" if stores[tree] else "")
        )


if __name__ == "__main__":
    main()
