"""A migrated store for the inbox's tests, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from notifyd.db import make_engine, upgrade


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "home").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()
