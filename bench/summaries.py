"""Summaries and lists on a big store: what the dashboard and ``tasks stats`` ask, at 1,000 and
1,000,000 runs, beside the GROUP BY over every run that the summary used to be.

The store is filled with SQL (a recursive CTE), through the tally's triggers like any write,
then folded as the dispatcher's sweep folds it. Goal: the summary at most 50 ms (median) on a
million runs, about what it costs on a thousand.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from bench.support import row, title
from notifyd.db import make_engine, upgrade, write_connection
from notifyd.metrics import Metrics
from notifyd.notifications import views
from notifyd.timeutil import utcnow
from notifyd.tracking import admin
from notifyd.tracking.admin import RUNS
from notifyd.tracking.models import RunStatus

SIZES = (1_000, 1_000_000)
SCRAPE = "whole /metrics scrape (render)"
REPEATS = 15
# Of every 1,000 runs: most delivered, some failed, a few waiting (as a store looks in use).
_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO task_run (id, task_name, queue, label, ref, args, status, attempts, max_attempts,
    interruptions, crashes, created_at, updated_at, next_attempt_at, finished_at, last_error)
SELECT printf('run_%012d', i), 'notifyd.deliver',
    CASE i % 4 WHEN 0 THEN 'email' WHEN 1 THEN 'webhook' WHEN 2 THEN 'log' ELSE 'apprise' END,
    printf('user%d@example.org', i), printf('ntf_%012d', i), '{}',
    CASE WHEN i % 1000 < 940 THEN 'succeeded' WHEN i % 1000 < 980 THEN 'failed'
         WHEN i % 1000 < 990 THEN 'retrying' ELSE 'queued' END,
    1, 8, 0, 0, datetime('now', printf('-%d seconds', :count - i)), datetime('now'),
    datetime('now'), datetime('now'), NULL
FROM n
"""
# One attempt per run that has started, at its creation time: the last day holds 86,400.
_ATTEMPTS = """
INSERT INTO attempt (run_id, number, worker, started_at, finished_at, duration_ms, outcome)
SELECT id, 1, 'bench', created_at, created_at, 5.0,
    CASE status WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'permanent_error'
         ELSE 'transient_error' END
FROM task_run WHERE status <> 'queued'
"""


def _group_by_every_run(conn: Connection) -> Any:
    return conn.execute(
        select(RUNS.c.queue, RUNS.c.status, func.count()).group_by(RUNS.c.queue, RUNS.c.status)
    ).all()


def _ignore_conn(call: Callable[[], Any], conn: Connection) -> Any:
    return call()  # it opens its own connection, as a scrape does


def _median_ms(engine: Engine, query: Callable[[Connection], Any]) -> float:
    timings = []
    with engine.connect() as conn:
        query(conn)  # warm the page cache
        for _ in range(REPEATS):
            started = time.perf_counter()
            query(conn)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _store(directory: Path, count: int) -> Engine:
    engine = make_engine(f"sqlite:///{directory / f'runs-{count}.db'}")
    upgrade(engine)
    with write_connection(engine) as conn:
        conn.exec_driver_sql(_FILL.replace(":count", str(count)))
        conn.exec_driver_sql(_ATTEMPTS)
    with write_connection(engine) as conn:
        admin.compact_tally(conn)
    return engine


def main() -> None:
    """Fill stores of 1,000 and 1,000,000 runs; time the summary and the dashboard's lists."""
    title("summaries and lists on a big store (SQLite, median of 15)")
    now = utcnow()
    queries: dict[str, Callable[[Connection], Any]] = {
        "summary (tasks stats)": lambda conn: views.task_stats(conn, now=now),
        "queue figures (/metrics)": lambda conn: admin.queue_figures(conn, now=now),
        "list newest 50": lambda conn: views.list_runs(conn, limit=50),
        "list failed, 50": lambda conn: views.list_runs(conn, status=RunStatus.failed, limit=50),
        "list one channel, 50": lambda conn: views.list_runs(conn, channel="webhook", limit=50),
        "chart: last day of attempts, hourly": lambda conn: admin.attempt_histogram(
            conn, since=now - timedelta(days=1), until=now, bucket_seconds=3600
        ),
        "chart: last hour of attempts, per minute": lambda conn: admin.attempt_histogram(
            conn, since=now - timedelta(hours=1), until=now, bucket_seconds=60
        ),
        "runs due now (overview)": lambda conn: admin.count_due(conn, now=now),
        "baseline: GROUP BY every run": _group_by_every_run,
    }
    with tempfile.TemporaryDirectory(prefix="notifyd-bench-") as tmp:
        results: dict[int, dict[str, float]] = {}
        for count in SIZES:
            started = time.monotonic()
            engine = _store(Path(tmp), count)
            print(f"  filled {count:,} runs in {time.monotonic() - started:.1f} s")
            results[count] = {name: _median_ms(engine, query) for name, query in queries.items()}
            # The whole scrape: every store-wide figure plus the process's own, rendered.
            scrape = Metrics(engine, in_flight=lambda: 0, clock=utcnow).render
            results[count][SCRAPE] = _median_ms(engine, partial(_ignore_conn, scrape))
            engine.dispose()
        small, big = SIZES
        row("query", f"{small:,} runs", f"{big:,} runs", "ratio")
        for name in [*queries, SCRAPE]:
            a, b = results[small][name], results[big][name]
            row(name, f"{a:.2f} ms", f"{b:.2f} ms", f"{b / a:.1f}x")
        summary = results[big]["summary (tasks stats)"]
        baseline = results[big]["baseline: GROUP BY every run"]
        print(
            f"  summary on {big:,} runs: {summary:.1f} ms (goal <= 50 ms), "
            f"{baseline / summary:.0f}x faster than the GROUP BY baseline; a /metrics scrape "
            f"{results[big][SCRAPE]:.1f} ms (goal < 20 ms)"
        )


if __name__ == "__main__":
    main()
