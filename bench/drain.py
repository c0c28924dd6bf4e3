"""Draining: how fast the dispatcher runs queued work, and that a slow backlog stays bounded.

1. Drain rate: N runs of a no-op task are committed, then the dispatcher (in this process, on
   a temporary SQLite store) runs them; runs/s until every one has succeeded. Baseline in the
   same run: a naive worker on the same store and SQL that claims one run, runs it and records
   it, one transaction each.
2. Bounded work: a notifyd server accepts 100,000 notifications for a channel whose every
   delivery takes 0.5 s (concurrency 32), then drains for a bounded window. Peak RSS, threads,
   asyncio tasks and runs in flight are printed beside an idle server's.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

import uvloop
from sqlalchemy import Engine, func, select

from bench.load import post_request, run_load
from bench.support import BenchServer, ProcStatus, mib, row, title
from notifyd.db import make_engine, read_session, upgrade, write_connection
from notifyd.models import Outcome, RunStatus
from notifyd.timeutil import utcnow
from notifyd.tracking import DispatcherConfig, TaskBatch, TaskRegistry, Tracker, admin, outcomes

DRAIN_RUNS = 10_000
NAIVE_RUNS = 2_000
NAIVE_SECONDS = 10.0
BOUNDED_NOTIFICATIONS = 100_000
SLOW_SECONDS = 0.5
DRAIN_WINDOW = 5.0
POLL = 0.05
DRAIN_TIMEOUT = 120.0

registry = TaskRegistry()


@registry.task("bench.noop")
async def noop(n: int) -> None:
    """Do nothing: what is left is the dispatcher's own cost."""


def _store(home: Path) -> Engine:
    engine = make_engine(f"sqlite:///{home / 'drain.db'}")
    upgrade(engine)
    return engine


def _succeeded(engine: Engine) -> int:
    with read_session(engine) as session:
        query = select(func.count()).where(admin.RUNS.c.status == RunStatus.succeeded.value)
        return int(session.execute(query).scalar_one())


async def _enqueue(tracker: Tracker, n: int) -> None:
    for start in range(0, n, 1000):
        batch = TaskBatch(tracker)
        for i in range(start, min(start + 1000, n)):
            batch.add_task(noop, i)
        await batch.commit()


async def dispatcher_rate(home: Path, n: int) -> tuple[float, float]:
    """Runs/s of the dispatcher over ``n`` no-op runs; also the seconds it took."""
    engine = _store(home)
    # As `notifyd serve` runs on SQLite (synchronous NORMAL): writes commit on the loop.
    tracker = Tracker(engine, registry, config=DispatcherConfig(concurrency=32), inline_writes=True)
    tracker.writer.start()
    await _enqueue(tracker, n)
    started = time.perf_counter()
    await tracker.dispatcher.start()
    # Poll the store, the source of truth, for at most DRAIN_TIMEOUT seconds.
    for _ in range(int(DRAIN_TIMEOUT / POLL)):
        if await asyncio.to_thread(_succeeded, engine) >= n:
            break
        await asyncio.sleep(POLL)
    elapsed = time.perf_counter() - started
    done = await asyncio.to_thread(_succeeded, engine)
    await tracker.stop(0)
    engine.dispose()
    return done / elapsed, elapsed


async def naive_rate(home: Path, n: int) -> float:
    """Runs/s of a worker that claims, runs and records one run at a time, a transaction each."""
    engine = _store(home)
    tracker = Tracker(engine, registry, run_dispatcher=False)
    tracker.writer.start()
    await _enqueue(tracker, n)
    tracker.writer.stop()
    task = registry.get("bench.noop")
    assert task is not None
    done = 0
    started = time.perf_counter()
    while done < n and time.perf_counter() - started < NAIVE_SECONDS:
        now = utcnow()
        with write_connection(engine) as conn:
            claimed = admin.claim_due(
                conn, now=now, limit=1, worker="naive", lease_until=now, queue_free=None
            )
        if not claimed:
            break
        run = claimed[0]
        await noop(**run.args)
        result = outcomes.AttemptResult(
            run_id=run.id,
            attempt=run.attempt,
            started_at=run.started_at,
            outcome=Outcome.succeeded,
            finished_at=utcnow(),
            duration_ms=0.0,
            status=RunStatus.succeeded,
        )
        with write_connection(engine) as conn:
            admin.finish_attempts(conn, [result], worker="naive")
        done += 1
    rate = done / (time.perf_counter() - started)
    engine.dispose()
    return rate


def drain_rate() -> None:
    """Print the dispatcher's drain rate beside the naive worker's."""
    title(f"drain rate: {DRAIN_RUNS:,} no-op runs, SQLite, concurrency 32, in process")
    with tempfile.TemporaryDirectory(prefix="notifyd-bench-drain-") as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        rate, elapsed = uvloop.run(dispatcher_rate(Path(tmp) / "a", DRAIN_RUNS))
        naive = uvloop.run(naive_rate(Path(tmp) / "b", NAIVE_RUNS))
    row("dispatcher (batched claims, group commit)", f"{rate:,.0f} runs/s", f"{elapsed:.1f} s")
    row("naive worker (one run per transaction)", f"{naive:,.0f} runs/s")
    print(f"  ratio dispatcher/naive: {rate / naive:.2f}")


class ProcSampler:
    """Samples the server process's /proc status in a thread; keeps the highest thread count."""

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.max_threads = 0
        self.max_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            status = self.server.status()
            self.max_threads = max(self.max_threads, status.threads)
            self.max_rss_kib = max(self.max_rss_kib, status.rss_kib)
            self._stop.wait(0.1)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bounded_work() -> None:
    """Print peak memory, threads and tasks under a slow backlog beside an idle server's."""
    title(
        f"bounded work: {BOUNDED_NOTIFICATIONS:,} notifications, deliveries of {SLOW_SECONDS} s, "
        "concurrency 32"
    )
    body = {"channel": "slow", "to": "bench@example.com", "message": "slow delivery"}
    with BenchServer("notifyd", slow_seconds=SLOW_SECONDS) as server:
        time.sleep(1.0)
        idle: ProcStatus = server.status()
        idle_stats = server.get("/bench/stats")
        request = post_request(server.port, "/v1/notifications", body)
        with ProcSampler(server) as sampler:
            load = uvloop.run(
                run_load(
                    server.port,
                    request,
                    connections=32,
                    requests=BOUNDED_NOTIFICATIONS,
                    deadline=180,
                )
            )
            time.sleep(DRAIN_WINDOW)
            stats = server.get("/bench/stats?runs=1")
            peak: ProcStatus = server.status()
    accepted = load.statuses.get(202, 0)
    runs = stats["runs"]
    print(
        f"  accepted {accepted:,} in {load.elapsed:.1f} s ({load.rate:,.0f}/s); after a "
        f"{DRAIN_WINDOW:.0f} s window: {runs.get('succeeded', 0):,} succeeded, "
        f"{runs.get('running', 0):,} running, {runs.get('queued', 0):,} queued"
    )
    if load.errors or set(load.statuses) - {202}:
        print(f"  answers: {load.describe_statuses()}")
    row("", "idle server", "under backlog", "ratio")
    row(
        "RSS (peak: VmHWM)",
        mib(idle.rss_kib),
        mib(peak.peak_rss_kib),
        f"{peak.peak_rss_kib / idle.rss_kib:.2f}",
    )
    row("threads (peak sampled)", str(idle.threads), str(sampler.max_threads))
    row(
        "asyncio tasks (peak sampled)",
        str(idle_stats["asyncio_tasks"]),
        str(stats["peak_asyncio_tasks"]),
    )
    row("runs in flight (peak sampled)", str(idle_stats["in_flight"]), str(stats["peak_in_flight"]))


def main() -> None:
    """Both drain benchmarks."""
    drain_rate()
    bounded_work()


if __name__ == "__main__":
    main()
