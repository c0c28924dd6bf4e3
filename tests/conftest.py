"""Shared fixtures: settings on a temporary data dir, a store on SQLite or PostgreSQL, an app."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from notifyd.runtime import build_runtime

POSTGRES_URL = os.environ.get(
    "NOTIFYD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's config, data dir or token."""
    for key in list(os.environ):
        if key.startswith("NOTIFYD_") and key != "NOTIFYD_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database, as a URL whose search_path points at it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'notifyd.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def make_settings(home: Path, db_url: str | None = None, **overrides: object) -> Settings:
    """Settings for a test: short intervals, a temporary home."""
    values: dict[str, object] = {
        "home": home,
        "database_url": db_url,
        "poll_seconds": 0.05,
        "sweep_seconds": 0.2,
        "grace_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on SQLite in a temporary data dir."""
    return make_settings(tmp_path / "home")


@pytest.fixture
def migrated(settings: Settings) -> Iterator[Engine]:
    """The settings' store, migrated."""
    engine = engine_for(settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def app(settings: Settings, migrated: Engine) -> FastAPI:
    """The app on a migrated temporary store."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client whose lifespan runs the dispatcher."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def held_client(settings: Settings, migrated: Engine) -> Iterator[TestClient]:
    """A client of an app that runs no dispatcher: runs stay as the test leaves them."""
    runtime = build_runtime(settings, engine=migrated, run_dispatcher=False)
    with TestClient(create_app(settings, runtime=runtime)) as test_client:
        yield test_client
