"""The library's own schema: a store made by version 1 is upgraded in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from notifyd.tracking import schema


def test_a_version_1_store_gains_the_trace_context_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        schema.install(engine)
        with engine.begin() as conn:  # as version 1 of the library left it
            conn.exec_driver_sql("ALTER TABLE task_run DROP COLUMN trace_context")
            conn.execute(schema.VERSION_TABLE.update().values(version=1))

        assert schema.install(engine) == schema.SCHEMA_VERSION == 3

        columns = {c["name"] for c in inspect(engine).get_columns("task_run")}
        assert "trace_context" in columns
        assert schema.installed_version(engine) == 3
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
        with engine.begin() as conn:  # as version 2 of the library left it: row triggers
            schema.restore_tally_triggers_v1(conn)
            conn.execute(schema.VERSION_TABLE.update().values(version=2))
        with engine.connect() as conn:
            before = conn.execute(text(_ORIENTATIONS)).scalars().all()
        assert set(before) == {"ROW"}

        assert schema.install(engine) == 3

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


_ORIENTATIONS = (
    "SELECT action_orientation FROM information_schema.triggers"
    " WHERE event_object_table = 'task_run' AND trigger_schema = current_schema()"
)
