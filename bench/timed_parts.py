"""Exact CPU of named functions per accepted-and-delivered notification (issue 19).

``python -m bench.timed_parts [--store sqlite|postgres] [--tree DIR] [--requests N]
[--steady RATE] [--timed MODULE:NAME ...]`` starts notifyd delivering to the log channel
(``bench.timed_server``: ``bench.server`` with timers around the named functions, see
``bench.timers``), warms it up, then posts ``--requests`` notifications with 32 connections
(or at a steady ``RATE`` over 64) and prints, for each function, its calls per request, its
thread's CPU per call and per request, its wall time per call, and its share of the server's
CPU (from /proc). Unlike ``bench.profile_parts`` (py-spy, which gives syscalls more than their
share) these are the functions' own counts; nested functions count inside their callers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.accept_throughput import BODY, CONNECTIONS
from bench.load import post_request, run_load
from bench.profile_parts import measured_load
from bench.store_ab import postgres_schema
from bench.support import BenchServer, title

DEFAULT_TIMED = (
    "notifyd.tracking.writer:Writer._flush_inline",  # SQLite: a group commit on the loop
    "notifyd.tracking.writer:Writer._commit",  # every group commit, on the loop or the thread
    "notifyd.tracking.writer:Writer._checkpoint",  # SQLite: the writer thread's checkpoints
    "notifyd.channels.log:LogChannel._append",  # the log channel's line
    "notifyd.api.tokenprobe:TokenProbe._sqlite_counts",  # open API: tokens counted once a pass
    "notifyd.db:StoreFile.check",  # the SQLite file still the one opened, once a commit
)
STATS_WAIT = 10.0  # seconds for the server to write its timings


def read_stats(server: BenchServer, path: Path) -> dict[str, Any]:
    """Ask the server for its timings (and restart its counts); wait for the file."""
    path.unlink(missing_ok=True)
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + STATS_WAIT
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the server wrote no timings within {STATS_WAIT:.0f} s:\n{server.log()}"
            )
        time.sleep(0.01)
    stats: dict[str, Any] = json.loads(path.read_text())
    return stats


def measure(tree: Path, store: str, requests: int, steady: float | None, timed: list[str]) -> None:
    """Run the server with the timers and print the table."""
    with (
        postgres_schema() if store == "postgres" else contextlib.nullcontext() as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        stats_path = Path(tmp) / "timings.json"
        server = BenchServer("notifyd")
        server.cwd = tree
        server.env["PYTHONPATH"] = str(tree)
        server.args[1:3] = [
            "-m", "bench.timed_server", *[f"--timed={spec}" for spec in timed],
            "--stats", str(stats_path), "--",
        ]  # fmt: skip
        if url:
            server.env["NOTIFYD_DATABASE_URL"] = url
        with server:
            request = post_request(server.port, "/v1/notifications", BODY)
            uvloop.run(run_load(server.port, request, connections=CONNECTIONS, requests=2000))
            read_stats(server, stats_path)  # the warm-up's counts are dropped
            load, cpu = measured_load(server, request, requests, steady)
            stats = read_stats(server, stats_path)
    count = max(load.count, 1)
    regime = "closed loop" if steady is None else f"steady {steady:,.0f}/s"
    title(f"CPU of named functions per notification ({store}, {tree.name}, {regime})")
    print(
        f"  {load.count:,} requests at {load.rate:,.0f}/s; the server {cpu / count * 1e6:,.0f} us "
        f"of CPU each, {cpu / load.elapsed:.0%} of one core"
    )
    print(
        f"  {'function':<48}{'calls/req':>10}{'CPU/call':>13}{'CPU/req':>11}"
        f"{'wall/call':>13}{'of server':>11}"
    )
    for spec in timed:
        timing = stats.get(spec, {"calls": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0})
        calls = timing["calls"]
        per_call = timing["cpu_seconds"] / calls * 1e6 if calls else 0.0
        wall = timing["wall_seconds"] / calls * 1e6 if calls else 0.0
        share = timing["cpu_seconds"] / cpu if cpu else 0.0
        print(
            f"  {spec.partition(':')[2]:<48}{calls / count:>10.3f}{per_call:>10,.1f} us"
            f"{timing['cpu_seconds'] / count * 1e6:>8,.1f} us{wall:>10,.1f} us{share:>11.1%}"
        )
    print("  (a function called inside another counts in both)")


def main() -> None:
    """Parse the flags and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tree", type=Path, default=Path("."))
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument(
        "--steady", type=float, help="send at this steady rate (requests/s) instead of closed loop"
    )
    parser.add_argument(
        "--timed",
        action="append",
        metavar="MODULE:NAME",
        help="a function to time (repeatable; default: the group commit's parts and the log line)",
    )
    args = parser.parse_args()
    timed = args.timed or list(DEFAULT_TIMED)
    measure(args.tree.resolve(), args.store, args.requests, args.steady, timed)


if __name__ == "__main__":
    main()
