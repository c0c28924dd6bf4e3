"""The admin reads the dashboard adds: the attempt histogram, due runs, search, bulk cancel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from notifyd.db import make_engine, upgrade, write_connection
from notifyd.tracking import admin
from notifyd.tracking.admin import ATTEMPTS, RUNS, RunFilter
from notifyd.tracking.models import RunStatus
from notifyd.ui.chart import HEIGHT, build_chart

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _run(engine: Engine, run_id: str, status: str, *, label: str = "x", **values: object) -> None:
    row = {
        "id": run_id,
        "task_name": "t",
        "queue": "log",
        "label": label,
        "ref": f"ntf_{run_id}",
        "args": {},
        "status": status,
        "attempts": 1,
        "max_attempts": 8,
        "interruptions": 0,
        "created_at": NOW,
        "updated_at": NOW,
        **values,
    }
    with write_connection(engine) as conn:
        conn.execute(RUNS.insert(), row)


def _attempt(engine: Engine, run_id: str, number: int, outcome: str, started: datetime) -> None:
    with write_connection(engine) as conn:
        conn.execute(
            ATTEMPTS.insert(),
            {"run_id": run_id, "number": number, "started_at": started, "outcome": outcome},
        )


def test_attempts_are_counted_by_outcome_per_bucket(store: Engine) -> None:
    _run(store, "run_a", "failed")
    since = NOW - timedelta(hours=1)
    _attempt(store, "run_a", 1, "succeeded", since + timedelta(seconds=5))
    _attempt(store, "run_a", 2, "succeeded", since + timedelta(seconds=59.9))
    _attempt(store, "run_a", 3, "transient_error", since + timedelta(seconds=60))
    _attempt(store, "run_a", 4, "permanent_error", NOW - timedelta(seconds=1))
    _attempt(store, "run_a", 5, "succeeded", since - timedelta(seconds=1))  # before: left out
    _attempt(store, "run_a", 6, "succeeded", NOW)  # the end is excluded
    with store.connect() as conn:
        found = admin.attempt_histogram(conn, since=since, until=NOW, bucket_seconds=60)
    assert found.buckets == 60
    assert found.counts["succeeded"][0] == 2 and sum(found.counts["succeeded"]) == 2
    assert found.counts["transient_error"][1] == 1
    assert found.counts["permanent_error"][59] == 1
    chart = build_chart("Last hour", found)
    assert chart.peak == 2 and chart.totals["succeeded"] == 2
    assert all(bar.y >= 0 and bar.y + bar.height <= HEIGHT + 0.01 for bar in chart.bars)


def test_attempts_under_way_are_counted_from_their_runs(store: Engine) -> None:
    since = NOW - timedelta(hours=1)
    # Attempts under way have no row yet: the run holds when each began.
    _run(store, "run_on", "running", worker="w1", attempt_started_at=since + timedelta(minutes=2))
    _run(store, "run_on2", "running", worker="w1", attempt_started_at=since + timedelta(minutes=2))
    _run(store, "run_old", "running", worker="w1", attempt_started_at=since - timedelta(minutes=1))
    _run(store, "run_done", "succeeded", attempt_started_at=since + timedelta(minutes=3))
    _attempt(store, "run_done", 1, "succeeded", since + timedelta(minutes=3))
    with store.connect() as conn:
        found = admin.attempt_histogram(conn, since=since, until=NOW, bucket_seconds=60)
        under_way = admin.get_run(conn, "run_on").attempts
    assert found.counts["running"][2] == 2 and sum(found.counts["running"]) == 2
    assert found.counts["succeeded"][3] == 1
    assert [(a.number, a.outcome, a.worker) for a in under_way] == [(1, "running", "w1")]


def test_due_runs_search_and_bulk_cancel(store: Engine) -> None:
    _run(store, "run_1", "queued", label="alice@example.org", next_attempt_at=NOW)
    _run(store, "run_2", "retrying", label="bob_%", next_attempt_at=NOW + timedelta(hours=1))
    _run(store, "run_3", "failed", label="carol")
    with store.connect() as conn:
        assert admin.count_due(conn, now=NOW) == 1
        assert admin.count_due(conn, now=NOW + timedelta(hours=2)) == 2
        every = RunFilter()

        def ids(text: str) -> list[str]:
            return [r.id for r in admin.search_runs(conn, every, text=text).items]

        assert ids("alice") == ["run_1"]
        assert ids("run_3") == ["run_3"] and ids("ntf_run_2") == ["run_2"]
        assert ids("%") == ["run_2"] and ids("_") == ["run_2"]
        page = admin.search_runs(conn, every, text="r", limit=1)
        assert [r.id for r in page.items] == ["run_3"] and page.next_cursor == "run_3"
    with write_connection(store) as conn:
        done = admin.cancel_runs(conn, selection=RunFilter(statuses=(RunStatus.retrying,)), now=NOW)
    assert done == 1
    with store.connect() as conn:
        assert admin.get_run(conn, "run_2").run.status is RunStatus.cancelled
        assert admin.get_run(conn, "run_1").run.status is RunStatus.queued
