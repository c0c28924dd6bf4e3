"""The library's own schema: a store made by an older version is upgraded in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from notifyd.tracking import schema


def test_a_version_1_store_gains_the_trace_context_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        schema.install(engine)
        with engine.begin() as conn:  # as version 1 of the library left it
            conn.exec_driver_sql("ALTER TABLE task_run DROP COLUMN trace_context")
            conn.execute(schema.VERSION_TABLE.update().values(version=1))

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
        with engine.begin() as conn:  # as version 2 of the library left it: row triggers
            schema.restore_tally_triggers_v1(conn)
            conn.execute(schema.VERSION_TABLE.update().values(version=2))
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
        assert "WHERE" in _due_index_definition(engine)
        with engine.begin() as conn:  # as version 3 of the library left it
            schema.full_due_index(conn)
            conn.execute(schema.VERSION_TABLE.update().values(version=3))
        assert "WHERE" not in _due_index_definition(engine)

        assert schema.install(engine) == schema.SCHEMA_VERSION

        definition = _due_index_definition(engine)
        assert "WHERE" in definition and "'queued'" in definition and "'retrying'" in definition
    finally:
        engine.dispose()


def _due_index_definition(engine: Engine) -> str:
    query = (
        "SELECT sql FROM sqlite_master WHERE name = 'ix_task_run_due'"
        if engine.dialect.name == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_run_due'"
        " AND schemaname = current_schema()"
    )
    with engine.connect() as conn:
        return str(conn.exec_driver_sql(query).scalar_one())


_ORIENTATIONS = (
    "SELECT action_orientation FROM information_schema.triggers"
    " WHERE event_object_table = 'task_run' AND trigger_schema = current_schema()"
)
