"""The store: migrations yield exactly the models, newer schemas are refused, SQLite is set up right."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlmodel import SQLModel

from notifyd.db import check_schema, current_revision, head_revision, make_engine, upgrade
from notifyd.errors import SchemaError
from notifyd.tracking.models import metadata as tracking_metadata


def test_migrating_an_empty_database_yields_exactly_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    models = MetaData()
    for table in (*SQLModel.metadata.tables.values(), *tracking_metadata.tables.values()):
        table.to_metadata(models)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), models
        )
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert upgrade(engine) == head_revision()
    engine.dispose()


def test_a_database_newer_than_the_code_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaError, match="newer than this version of notifyd"):
        upgrade(engine)
    with pytest.raises(SchemaError, match="newer"):
        check_schema(engine)
    engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}", busy_timeout_ms=1234)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    engine.dispose()
