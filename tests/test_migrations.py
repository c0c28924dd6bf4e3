"""Upgrading a populated store keeps every notification, run and attempt."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Engine, select, text

from notifyd.db import alembic_config, head_revision, make_engine, upgrade
from notifyd.models import Notification
from notifyd.tracking import admin
from notifyd.tracking.admin import ATTEMPTS, RUNS
from notifyd.tracking.engine import write_connection
from tests.tracking.conftest import due_index_definition

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
WHEN = datetime(2026, 11, 30, 9, 0)


def _migrate_to(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _downgrade_to(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _populate_0002(engine: Engine, runs: int) -> None:
    """Rows as notifyd 0002 wrote them: runs name their channel, recipient and notification."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notification (id, channel, subject, message, recipients, created_at)"
                " VALUES ('ntf_1', 'email', 'Hi', 'Hello', '[\"a@example.org\"]', :at)"
            ),
            {"at": WHEN},
        )
        for index in range(runs):
            conn.execute(
                text(
                    "INSERT INTO task_run (id, task_name, notification_id, channel, recipient,"
                    " args, status, attempts, max_attempts, interruptions, crashes, created_at,"
                    " updated_at, next_attempt_at, last_error) VALUES (:id, 'notifyd.deliver',"
                    " 'ntf_1', 'email', :to, '{}', :status, 2, 8, 1, 1, :at, :at, :at, 'E: x')"
                ),
                {
                    "id": f"run_{index:03}",
                    "to": f"user{index}@example.org",
                    "status": ("retrying", "succeeded", "failed")[index % 3],
                    "at": WHEN,
                },
            )
            for number in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO attempt (run_id, number, worker, started_at, finished_at,"
                        " duration_ms, outcome, error_type, error_message, response) VALUES"
                        " (:run, :number, 'w1', :at, :at, 12.5, 'transient_error', 'SMTPError',"
                        " 'try later', '{\"code\": 451}')"
                    ),
                    {"run": f"run_{index:03}", "number": number, "at": WHEN},
                )


def test_upgrading_a_populated_0002_store_keeps_every_run_and_attempt(db_url: str) -> None:
    engine = make_engine(db_url)
    _migrate_to(engine, "0002")
    _populate_0002(engine, runs=30)
    assert upgrade(engine) == head_revision()
    with engine.connect() as conn:
        runs = conn.execute(select(RUNS).order_by(RUNS.c.id)).all()
        attempts = conn.execute(select(ATTEMPTS)).all()
        notes = conn.execute(select(NOTIFICATIONS.c.id)).scalars().all()
    engine.dispose()
    assert notes == ["ntf_1"]
    assert [run.id for run in runs] == [f"run_{i:03}" for i in range(30)]
    first = runs[0]
    assert (first.queue, first.label, first.ref) == ("email", "user0@example.org", "ntf_1")
    assert (first.status, first.attempts, first.max_attempts, first.crashes) == (
        "retrying",
        2,
        8,
        1,
    )
    assert first.created_at.replace(tzinfo=None) == WHEN and first.last_error == "E: x"
    assert len(attempts) == 60
    assert {a.run_id for a in attempts} == {run.id for run in runs}
    assert all(a.response == {"code": 451} and a.duration_ms == 12.5 for a in attempts)


def test_a_run_need_not_refer_to_a_notification_any_more(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            RUNS.insert().values(
                id="run_x",
                task_name="t",
                ref="an-object-of-the-apps-own",
                args={},
                status="queued",
                attempts=0,
                max_attempts=1,
                interruptions=0,
                created_at=WHEN,
                updated_at=WHEN,
            )
        )
    with engine.connect() as conn:
        assert conn.execute(select(RUNS.c.ref)).scalar_one() == "an-object-of-the-apps-own"
    engine.dispose()


def test_trace_context_goes_and_comes_back_keeping_the_tally(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        _downgrade_to(engine, "0008")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO task_run (id, task_name, args, status, attempts, max_attempts,"
                    " interruptions, crashes, created_at, updated_at, next_attempt_at) VALUES"
                    " ('run_1', 't', '{}', 'queued', 0, 1, 0, 0, :at, :at, :at)"
                ),
                {"at": WHEN},
            )
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(select(RUNS.c.trace_context)).scalar_one() is None
            tally = conn.execute(text("SELECT sum(delta) FROM task_run_tally")).scalar_one()
            assert tally == 1  # the triggers outlived the column's removal
    finally:
        engine.dispose()


def _tally_matches_the_runs(engine: Engine) -> None:
    with engine.connect() as conn:
        tallied: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT status, sum(delta) FROM task_run_tally GROUP BY status"
                    " HAVING sum(delta) <> 0"
                )
            ).all()
        )
        counted: dict[str, int] = dict(
            conn.execute(text("SELECT status, count(*) FROM task_run GROUP BY status")).all()
        )
    assert tallied == counted


def _move_runs(engine: Engine, prefix: str) -> None:
    """Runs inserted, moved, touched without a move, and deleted, several per statement."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_run (id, task_name, args, status, attempts, max_attempts,"
                " interruptions, crashes, created_at, updated_at, next_attempt_at) VALUES"
                " (:a, 't', '{}', 'queued', 0, 1, 0, 0, :at, :at, :at),"
                " (:b, 't', '{}', 'queued', 0, 1, 0, 0, :at, :at, :at),"
                " (:c, 't', '{}', 'running', 1, 1, 0, 0, :at, :at, :at)"
            ),
            {"a": f"{prefix}_a", "b": f"{prefix}_b", "c": f"{prefix}_c", "at": WHEN},
        )
        conn.execute(
            text("UPDATE task_run SET status = 'running' WHERE id IN (:a, :b)"),
            {"a": f"{prefix}_a", "b": f"{prefix}_b"},
        )
        conn.execute(text("UPDATE task_run SET lease_expires_at = :at"), {"at": WHEN})
        conn.execute(
            text("UPDATE task_run SET status = 'succeeded' WHERE id = :c"), {"c": f"{prefix}_c"}
        )
        conn.execute(text("DELETE FROM task_run WHERE id = :a"), {"a": f"{prefix}_a"})


def _tally_orientations(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT action_orientation FROM information_schema.triggers"
                    " WHERE event_object_table = 'task_run'"
                    " AND trigger_schema = current_schema()"
                )
            ).scalars()
        )


def test_the_tally_counts_every_move_through_0011_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        upgrade(engine)
        head = head_revision()
        assert head is not None and head >= "0011"
        if postgres:  # one call per statement, not per run
            assert _tally_orientations(engine) == {"STATEMENT"}
        _move_runs(engine, "new")
        _tally_matches_the_runs(engine)
        _downgrade_to(engine, "0010")
        if postgres:
            assert _tally_orientations(engine) == {"ROW"}
        _move_runs(engine, "old")
        _tally_matches_the_runs(engine)
        upgrade(engine)
        _move_runs(engine, "again")
        _tally_matches_the_runs(engine)
    finally:
        engine.dispose()


def _claimable(engine: Engine) -> list[str]:
    """The due runs a claim would take now, in its order (through the due index)."""
    with write_connection(engine) as conn:
        claimed = admin.claim_due(
            conn, now=datetime(2030, 1, 1), limit=10, worker="w", lease_until=datetime(2030, 1, 2)
        )
        conn.rollback()
    return [run.id for run in claimed]


def _due_in_order(engine: Engine) -> list[str]:
    """The due runs in due order, as any revision's claim reads them."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id FROM task_run WHERE status IN ('queued', 'retrying')"
                    " ORDER BY next_attempt_at, id"
                )
            ).scalars()
        )


def test_the_due_index_becomes_partial_in_0012_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        _migrate_to(engine, "0011")
        with engine.begin() as conn:
            for number, status in enumerate(["queued", "running", "retrying", "succeeded"] * 3):
                conn.execute(
                    text(
                        "INSERT INTO task_run (id, task_name, args, status, attempts,"
                        " max_attempts, interruptions, crashes, created_at, updated_at,"
                        " next_attempt_at) VALUES (:id, 't', '{}', :status, 0, 3, 0, 0, :at, :at,"
                        " :due)"
                    ),
                    {
                        "id": f"run_{number:02}",
                        "status": status,
                        "at": WHEN,
                        "due": WHEN.replace(minute=59 - number),
                    },
                )
        assert "WHERE" not in due_index_definition(engine)
        due = _due_in_order(engine)
        assert due == ["run_10", "run_08", "run_06", "run_04", "run_02", "run_00"]
        upgrade(engine)
        assert "WHERE" in due_index_definition(engine)
        assert _claimable(engine) == due  # the head's claim, through the partial index
        _downgrade_to(engine, "0011")
        assert "WHERE" not in due_index_definition(engine)
        assert _due_in_order(engine) == due
    finally:
        engine.dispose()


def test_attempts_under_way_move_onto_their_runs_in_0013_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        _migrate_to(engine, "0012")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO task_run (id, task_name, args, status, attempts, max_attempts,"
                    " interruptions, crashes, created_at, updated_at, worker) VALUES"
                    " ('run_on', 't', '{}', 'running', 2, 3, 0, 0, :at, :at, 'w1'),"
                    " ('run_done', 't', '{}', 'succeeded', 1, 3, 0, 0, :at, :at, NULL)"
                )
            , {"at": WHEN})  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO attempt (run_id, number, worker, started_at, finished_at,"
                    " outcome) VALUES ('run_on', 1, 'w1', :at, :at, 'transient_error'),"
                    " ('run_on', 2, 'w1', :later, NULL, 'running'),"
                    " ('run_done', 1, 'w1', :at, :at, 'succeeded')"
                ),
                {"at": WHEN, "later": WHEN.replace(minute=5)},
            )
        upgrade(engine)
        with engine.connect() as conn:
            kept = conn.execute(
                select(ATTEMPTS.c.run_id, ATTEMPTS.c.number, ATTEMPTS.c.outcome).order_by(
                    ATTEMPTS.c.run_id, ATTEMPTS.c.number
                )
            ).all()
            begun = dict(conn.execute(select(RUNS.c.id, RUNS.c.attempt_started_at)).all())
            under_way = admin.get_run(conn, "run_on").attempts[-1]
        assert [tuple(row) for row in kept] == [
            ("run_done", 1, "succeeded"),
            ("run_on", 1, "transient_error"),
        ]
        assert begun == {"run_on": WHEN.replace(minute=5, tzinfo=UTC), "run_done": None}
        assert (under_way.number, under_way.outcome, under_way.worker) == (2, "running", "w1")
        _downgrade_to(engine, "0012")
        with engine.connect() as conn:
            back = conn.execute(
                text("SELECT run_id, number, outcome, started_at FROM attempt ORDER BY 1, 2")
            ).all()
        assert [tuple(row)[:3] for row in back] == [
            ("run_done", 1, "succeeded"),
            ("run_on", 1, "transient_error"),
            ("run_on", 2, "running"),
        ]
    finally:
        engine.dispose()
