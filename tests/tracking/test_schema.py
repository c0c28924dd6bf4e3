"""The library's own schema: a store made by version 1 is upgraded in place."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from notifyd.tracking import schema


def test_a_version_1_store_gains_the_trace_context_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        schema.install(engine)
        with engine.begin() as conn:  # as version 1 of the library left it
            conn.exec_driver_sql("ALTER TABLE task_run DROP COLUMN trace_context")
            conn.execute(schema.VERSION_TABLE.update().values(version=1))

        assert schema.install(engine) == schema.SCHEMA_VERSION == 2

        columns = {c["name"] for c in inspect(engine).get_columns("task_run")}
        assert "trace_context" in columns
        assert schema.installed_version(engine) == 2
        with engine.connect() as conn:
            triggers = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ).all()
        assert len(triggers) == 3  # the tally's triggers survive the upgrade
    finally:
        engine.dispose()
