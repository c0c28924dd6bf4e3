"""The library's own schema: a store made by an older version is upgraded in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, inspect, text

from notifyd.tracking import schema
from tests.tracking.conftest import due_index_definition


def test_a_version_1_store_gains_the_trace_context_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        schema.install(engine)
        with engine.begin() as conn:
            _as_version(conn, 1)

        assert schema.install(engine) == schema.SCHEMA_VERSION

        columns = {c["name"] for c in inspect(engine).get_columns("task_run")}
        assert "trace_context" in columns
        assert schema.installed_version(engine) == schema.SCHEMA_VERSION
        with engine.connect() as conn:
            triggers = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ).all()
        assert len(triggers) == 3  # the tally's triggers survive the upgrade
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_version_2_store_on_postgresql_gets_statement_triggers(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        schema.install(engine)
        with engine.begin() as conn:
            _as_version(conn, 2)  # row triggers
        with engine.connect() as conn:
            before = conn.execute(text(_ORIENTATIONS)).scalars().all()
        assert set(before) == {"ROW"}

        assert schema.install(engine) == schema.SCHEMA_VERSION

        with engine.begin() as conn:
            orientations = conn.execute(text(_ORIENTATIONS)).scalars().all()
            conn.exec_driver_sql(
                "INSERT INTO task_run (id, task_name, args, status, attempts, max_attempts,"
                " interruptions, created_at, updated_at) SELECT 'run_' || n, 't', '{}',"
                " 'queued', 0, 1, 0, now(), now() FROM generate_series(1, 30) AS n"
            )
            conn.exec_driver_sql("UPDATE task_run SET status = 'running' WHERE id <> 'run_1'")
            tally = conn.exec_driver_sql(
                "SELECT status, sum(delta), count(*) FROM task_run_tally GROUP BY status"
                " ORDER BY status"
            ).all()
        assert set(orientations) == {"STATEMENT"}
        # Two statements, three tally rows: one per (queue, status) each statement moved.
        assert [tuple(row) for row in tally] == [("queued", 1, 2), ("running", 29, 1)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_version_3_store_gets_the_partial_due_index(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'app.db'}"
        if store == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = create_engine(url)
    try:
        schema.install(engine)
        assert "WHERE" in due_index_definition(engine)
        with engine.begin() as conn:
            _as_version(conn, 3)
        assert "WHERE" not in due_index_definition(engine)

        assert schema.install(engine) == schema.SCHEMA_VERSION

        definition = due_index_definition(engine)
        assert "WHERE" in definition and "'queued'" in definition and "'retrying'" in definition
    finally:
        engine.dispose()


def test_a_version_4_store_writes_attempts_at_their_end_keeping_those_under_way(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        schema.install(engine)
        with engine.begin() as conn:
            _as_version(conn, 4)
            conn.exec_driver_sql(
                "INSERT INTO task_run (id, task_name, args, status, attempts, max_attempts,"
                " interruptions, created_at, updated_at, worker) VALUES"
                " ('run_1', 't', '{}', 'running', 2, 3, 0, '2026-12-07 01:00:00',"
                " '2026-12-07 01:00:05', 'w1')"
            )
            conn.exec_driver_sql(  # attempt 1 ended; attempt 2 opened by version 4's claim
                "INSERT INTO attempt (run_id, number, worker, started_at, finished_at, outcome)"
                " VALUES ('run_1', 1, 'w1', '2026-12-07 01:00:00', '2026-12-07 01:00:01',"
                " 'transient_error'), ('run_1', 2, 'w1', '2026-12-07 01:00:05', NULL,"
                " 'running')"
            )

        assert schema.install(engine) == schema.SCHEMA_VERSION

        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT number, outcome FROM attempt").all()
            begun = conn.exec_driver_sql("SELECT attempt_started_at FROM task_run").scalar_one()
        assert [tuple(row) for row in rows] == [(1, "transient_error")]
        assert str(begun).startswith("2026-12-07 01:00:05")
    finally:
        engine.dispose()


def _as_version(conn: Connection, version: int) -> None:
    """A store just installed, taken back to how that version of the library left it."""
    if version < 5:
        schema.attempts_opened_at_claim(conn)
    if version < 4:
        schema.full_due_index(conn)
    if version < 3 and conn.dialect.name == "postgresql":
        schema.restore_tally_triggers_v1(conn)
    if version < 2:
        conn.exec_driver_sql("ALTER TABLE task_run DROP COLUMN trace_context")
    conn.execute(schema.VERSION_TABLE.update().values(version=version))


_ORIENTATIONS = (
    "SELECT action_orientation FROM information_schema.triggers"
    " WHERE event_object_table = 'task_run' AND trigger_schema = current_schema()"
)
