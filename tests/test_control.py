"""Operator control on the store: retry gives a fresh start; refusals name the state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from notifyd import control
from notifyd.db import make_engine, upgrade, write_connection
from notifyd.errors import InvalidState, NotFound
from notifyd.timeutil import utcnow
from notifyd.tracking.queries import RUNS


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _insert_run(engine: Engine, run_id: str, **values: object) -> None:
    now = utcnow()
    row = {
        "id": run_id,
        "task_name": "t",
        "args": {},
        "status": "failed",
        "attempts": 8,
        "max_attempts": 8,
        "interruptions": 3,
        "crashes": 4,
        "created_at": now,
        "updated_at": now,
        "finished_at": now,
        **values,
    }
    with write_connection(engine) as conn:
        conn.execute(RUNS.insert(), row)


def test_retry_starts_a_run_afresh(store: Engine) -> None:
    _insert_run(store, "run_a")
    with write_connection(store) as conn:
        control.retry_run(conn, run_id="run_a", now=utcnow(), max_attempts_for=lambda _: 8)
    with store.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == "run_a")).one()
    assert run.status == "queued" and run.finished_at is None
    assert (run.max_attempts, run.interruptions, run.crashes) == (16, 0, 0)


def test_wrong_states_and_unknown_ids_are_refused(store: Engine) -> None:
    _insert_run(store, "run_b", status="running", finished_at=None)
    with write_connection(store) as conn, pytest.raises(InvalidState, match="is running"):
        control.retry_run(conn, run_id="run_b", now=utcnow(), max_attempts_for=lambda _: 8)
    with write_connection(store) as conn, pytest.raises(InvalidState, match="queued or retrying"):
        control.cancel_run(conn, run_id="run_b", now=utcnow())
    with write_connection(store) as conn, pytest.raises(NotFound):
        control.cancel_run(conn, run_id="run_nope", now=utcnow())
    with write_connection(store) as conn, pytest.raises(InvalidState, match="not running"):
        control.retry_runs(
            conn,
            selection=control.RunFilter(status=control.RunStatus.running),
            now=utcnow(),
            max_attempts_for=lambda _: 8,
        )


def test_prune_never_takes_a_run_that_is_no_longer_finished(store: Engine) -> None:
    from datetime import timedelta

    old = utcnow() - timedelta(days=60)
    _insert_run(store, "run_c", finished_at=old)
    with write_connection(store) as conn:
        # As if an operator's retry landed between prune's select and its delete.
        conn.execute(update(RUNS).where(RUNS.c.id == "run_c").values(status="queued"))
        removed = control.prune_chunk(conn, older_than=timedelta(days=30), now=utcnow())
    assert removed.runs == 0
