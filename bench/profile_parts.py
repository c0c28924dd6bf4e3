"""Where the server's CPU goes per accepted-and-delivered notification, by part (issue 19).

``python -m bench.profile_parts [--store sqlite|postgres] [--tree DIR] [--requests N]`` starts
notifyd delivering to the log channel (``bench.server``, from ``--tree``), warms it up, then
samples it with py-spy (``pip install py-spy``; it needs ptrace, as root here) while
``--requests`` notifications are posted with 32 connections (or, with ``--steady RATE``, at that
steady rate over 64), and prints the server's CPU per
request (from /proc) split by the parts below, each with how much of it was spent inside the
store driver's C code (SQLite's own work; psycopg's). Sampling sees only threads on the CPU, so
the shares are of CPU time (less the waits py-spy takes for work, see ``is_wait``, which are
dropped). A sample is given to the first rule that matches any of its
frames, from the innermost frame out.
"""

from __future__ import annotations

import argparse
import contextlib
import linecache
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import uvloop

from bench.accept_throughput import BODY, CONNECTIONS
from bench.load import LoadResult, post_request, run_load
from bench.steady_latency import STEADY_CONNECTIONS
from bench.store_ab import postgres_schema
from bench.support import BenchServer, title

# (part, what a frame's "function (file:line)" text contains), tried in this order per frame.
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("claim", ("Dispatcher._claim", "claim_runs", "claim_due", "claim (notifyd/tracking/admin/")),
    ("outcome recording", ("recording.py", "finish_attempts", "storable", "worker_pg.py")),
    ("lease housekeeping", ("admin/leases.py", "tracking/leases.py", "Dispatcher.sweep")),
    ("execution (delivery, log line)", ("tracking/execution.py", "channels/", "delivery.py")),
    ("dispatcher loop", ("tracking/dispatcher.py",)),
    ("group commit (accept inserts, begin/commit)", ("tracking/writer.py", "tracking/batches.py")),
    (
        "accept lane (validation, submit, answer)",
        ("notifyd/api/", "notifyd/notifications/", "notifyd/tracking/tasks.py", "pydantic"),
    ),
    ("uvicorn, httptools", ("uvicorn/", "httptools")),
    ("asyncio, uvloop", ("asyncio/", "uvloop")),
]
# A sample whose innermost frame is one of SQLAlchemy's DB-API calls is inside the driver's C
# code (SQLite's own work); one with a frame in psycopg is in that driver (its Python and C).
DRIVER = {"do_execute", "do_executemany", "do_commit", "do_begin", "do_rollback"}
# Our own frames that call SQLite's driver directly, SQLAlchemy's execution skipped: a sample
# whose innermost frame is one of them is in the driver's C code too.
DIRECT = (("_run", "notifyd/tracking/bulk.py"), ("_on_begin", "notifyd/tracking/engine.py"))
# Threads blocked on a line with these are waiting, not working, though py-spy reports some as
# active (a pool's idle workers, the writer thread between batches): their samples are dropped.
WAITS = ("queue.get(",)


def is_wait(frame: str, roots: list[Path]) -> bool:
    """Whether ``frame`` ("function (file:line)") is blocked on a queue (see ``WAITS``), or is
    the event loop's own C code with no Python callback running (uvloop polling, or waiting
    for the GIL while the writer thread holds it: on PostgreSQL a sixth of the samples), or
    psycopg waiting for the server (a fifth of them)."""
    if frame.startswith(("Runner.run (asyncio/runners.py", "Connection.wait (psycopg/")):
        return True  # the loop polling; psycopg waiting for the server's answer
    where = frame.rpartition(" (")[2].rstrip(")")
    name, _, number = where.rpartition(":")
    if not number.isdigit():
        return False
    for root in roots:
        path = root / name
        if path.is_file():
            return any(wait in linecache.getline(str(path), int(number)) for wait in WAITS)
    return False


def classify(stack: list[str]) -> str:
    """The part a sampled stack (outermost frame first) belongs to."""
    for frame in reversed(stack):
        for part, needles in RULES:
            if any(needle in frame for needle in needles):
                return part
    return "other"


def in_driver(stack: list[str]) -> bool:
    """Whether the sample was taken inside the store's driver (see ``DRIVER``)."""
    function, _, where = stack[-1].partition(" (")
    innermost = function.rsplit(".", 1)[-1]
    direct = any(function.endswith(name) and where.startswith(path) for name, path in DIRECT)
    return innermost in DRIVER or direct or any("psycopg/" in frame for frame in stack)


def read_samples(path: Path, tree: Path) -> tuple[Counter[str], Counter[str]]:
    """py-spy's raw output: samples by part, and of them inside the driver."""
    parts: Counter[str] = Counter()
    driver: Counter[str] = Counter()
    roots = [tree, *(Path(entry) for entry in sys.path if entry)]
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text:
            continue
        stack = stack_text.split(";")
        if is_wait(stack[-1], roots):
            continue
        part = classify(stack)
        parts[part] += int(count)
        if in_driver(stack):
            driver[part] += int(count)
    return parts, driver


def measured_load(
    server: BenchServer, request: bytes, requests: int, steady: float | None
) -> tuple[LoadResult, float]:
    """``requests`` sent with 32 connections (or at ``steady``/s over 64, open loop), and the
    server's CPU seconds meanwhile."""
    cpu_before = server.status().cpu_seconds
    load = uvloop.run(
        run_load(
            server.port,
            request,
            connections=CONNECTIONS if steady is None else STEADY_CONNECTIONS,
            requests=requests,
            rate=steady,
            from_schedule=steady is not None,
        )
    )
    return load, server.status().cpu_seconds - cpu_before


def profile(
    tree: Path, store: str, requests: int, rate: int, keep: Path | None, steady: float | None
) -> None:
    """Run the server under py-spy and print the table (closed loop, or at ``steady``/s)."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit(f"no {spy}: install it first ({sys.executable} -m pip install py-spy)")
    with (
        postgres_schema() if store == "postgres" else contextlib.nullcontext() as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server = BenchServer("notifyd")
        server.cwd = tree
        if url:
            server.env["NOTIFYD_DATABASE_URL"] = url
        output = Path(tmp) / "samples.txt"
        with server:
            request = post_request(server.port, "/v1/notifications", BODY)
            uvloop.run(run_load(server.port, request, connections=CONNECTIONS, requests=2000))
            sampler = subprocess.Popen(
                [str(spy), "record", "--pid", str(server.pid), "--rate", str(rate),
                 "--format", "raw", "--output", str(output)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            load, cpu = measured_load(server, request, requests, steady)
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=30)
        parts, driver = read_samples(output, tree)
        if keep is not None:
            keep.write_text(output.read_text())
    total = sum(parts.values()) or 1
    per_request = cpu / max(load.count, 1) * 1e6
    regime = "closed loop" if steady is None else f"steady {steady:,.0f}/s"
    title(
        "server CPU per accepted-and-delivered notification, by part "
        f"({store}, {tree.name}, {regime})"
    )
    print(
        f"  {load.count:,} requests at {load.rate:,.0f}/s, {per_request:,.0f} us of server CPU "
        f"each (py-spy at {rate} Hz, {total:,} samples; its pauses are counted in)"
    )
    print(f"  {'part':<46}{'us/req':>8}{'share':>8}{'in driver C':>13}")
    for part, samples in parts.most_common():
        print(
            f"  {part:<46}{per_request * samples / total:>8,.0f}{samples / total:>8.0%}"
            f"{per_request * driver[part] / total:>10,.0f} us"
        )
    all_driver = sum(driver.values())
    print(
        f"  {'of all: inside the store driver C code':<46}{per_request * all_driver / total:>8,.0f}"
    )


def main() -> None:
    """Parse the flags and print the profile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tree", type=Path, default=Path("."))
    parser.add_argument("--requests", type=int, default=15000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--samples", type=Path, help="keep py-spy's raw samples in this file")
    parser.add_argument(
        "--steady", type=float, help="send at this steady rate (requests/s) instead of closed loop"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("py-spy needs ptrace: run as root (or allow ptrace)", file=sys.stderr)
    profile(args.tree.resolve(), args.store, args.requests, args.rate, args.samples, args.steady)


if __name__ == "__main__":
    main()
