"""Does ``notifyd.tracking.bulk`` still pay? The hot writes through it beside SQLAlchemy's own
executemany of the same statements, in the same run, on SQLite.

Each round, in one transaction, inserts a batch of runs (the group commit's insert), claims them
(``_CLAIM_RUN``) and records their outcomes (``_FINISH_ATTEMPT`` writes each attempt's row,
``_FINISH_RUN`` moves the run on): what one accepted and delivered notification costs the
store, per row. The
figure is microseconds of this process's time per run, best of the repeats; the database's
own work (indexes, the tally's trigger, the commit) is in both.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection

from bench.support import row, title
from notifyd.tracking import bulk, schema
from notifyd.tracking import engine as tracking_engine
from notifyd.tracking.admin import RUNS
from notifyd.tracking.admin.worker import _CLAIM_RUN, _FINISH_ATTEMPT, _FINISH_RUN

BATCH = 256  # the writer's largest batch
ROUNDS = 40
REPEATS = 5
WHEN = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@contextmanager
def _plain_way() -> Iterator[None]:
    """SQLAlchemy's own executemany for every statement, as before bulk.py."""
    original = bulk._short_way
    bulk._short_way = lambda dialect: False
    try:
        yield
    finally:
        bulk._short_way = original


def _cycle(conn: Connection, start: int) -> None:
    ids = [f"run_{start + n:09d}" for n in range(BATCH)]
    later = WHEN + timedelta(seconds=1)
    runs = [
        {
            "id": run_id, "task_name": "notifyd.deliver", "queue": "log", "label": "ops",
            "ref": f"ntf_{run_id}", "args": {"notification_id": f"ntf_{run_id}", "to": "ops"},
            "status": "queued", "attempts": 0, "max_attempts": 8, "interruptions": 0,
            "created_at": WHEN, "updated_at": WHEN, "next_attempt_at": WHEN,
        }
        for run_id in ids
    ]  # fmt: skip
    bulk.insert_rows(conn, RUNS, runs)
    claims = [
        {"b_id": i, "b_attempt": 1, "b_worker": "w", "b_lease": later, "b_now": WHEN} for i in ids
    ]
    bulk.execute_many(conn, _CLAIM_RUN, claims)
    finished = [
        {
            "b_run": i, "b_worker": "w", "b_number": 1, "b_started": WHEN, "b_finished": later,
            "b_duration": 1.5,
            "b_outcome": "succeeded", "b_error_type": None, "b_error_message": None,
            "b_traceback": None, "b_delay": None, "b_response": {"line": 1},
        }
        for i in ids
    ]  # fmt: skip
    bulk.execute_many(conn, _FINISH_ATTEMPT, finished)
    done = [
        {
            "b_run": i, "b_worker": "w", "b_number": 1, "b_status": "succeeded", "b_next": None,
            "b_finished": later, "b_error": None, "b_updated": later, "b_released": 0,
        }
        for i in ids
    ]  # fmt: skip
    bulk.execute_many(conn, _FINISH_RUN, done)


def main() -> None:
    title(f"bulk.py: insert, claim and finish {BATCH} runs a transaction, per run (SQLite)")
    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for name in ("plain", "short"):
            engines[name] = tracking_engine.tracking_engine(f"sqlite:///{Path(tmp) / name}.db")
            schema.install(engines[name])
        best = {"plain": float("inf"), "short": float("inf")}
        start = 0
        for _ in range(REPEATS):  # interleaved: the machine's noise falls on both alike
            for name, way in (("plain", _plain_way), ("short", _no_change)):
                with way():
                    began = time.process_time()
                    for _ in range(ROUNDS):
                        with engines[name].begin() as conn:
                            _cycle(conn, start)
                        start += BATCH
                per_run = (time.process_time() - began) / (ROUNDS * BATCH) * 1e6
                best[name] = min(best[name], per_run)
        for engine in engines.values():
            engine.dispose()
    plain, short = best["plain"], best["short"]
    row("SQLAlchemy's executemany", f"{plain:.1f} us/run")
    row("bulk.py's driver executemany", f"{short:.1f} us/run", f"{plain / short:.2f}x faster")
    row("saved per accepted and delivered run", f"{plain - short:.1f} us")


@contextmanager
def _no_change() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
