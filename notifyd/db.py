"""The store's engine and sessions, SQLite's pragmas, and the Alembic entry points."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

import migrations
from notifyd.config import Settings
from notifyd.errors import ConfigError, SchemaError, StoreUnavailable
from notifyd.tracking.engine import WRITE_OPTION, json_dumps, prepare_sqlite
from notifyd.tracking.engine import write_connection as write_connection

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
STORE_LOST_RETRY_AFTER = 30.0
log = logging.getLogger(__name__)


class StoreFile:
    """Notices that the SQLite file at the store's path is no longer the file this process
    opened (deleted, or replaced): SQLite would go on writing to the unlinked file, and every
    write, each one answered 202, would vanish at the next start. Nothing to watch elsewhere.
    """

    def __init__(self, engine: Engine) -> None:
        self.path = sqlite_path(engine.url.render_as_string(hide_password=False))
        self.identity: tuple[int, int] | None = None
        self.lost: str | None = None

    def _identity(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def remember(self) -> None:
        """Take the file now at the path as the store's (once it exists: after migrating)."""
        if self.path is not None:
            self.identity = self._identity()

    def check(self) -> None:
        """StoreUnavailable (503) once the file at the path is not the store's; logged once."""
        if self.lost is None and self.identity is not None and self._identity() != self.identity:
            self.lost = (
                f"the SQLite file {self.path} was deleted or replaced while notifyd was using "
                "it: nothing more is accepted, since it could not be kept; restart notifyd"
            )
            log.error("%s", self.lost)
        if self.lost is not None:
            raise StoreUnavailable(self.lost, retry_after=STORE_LOST_RETRY_AFTER)


def engine_for(settings: Settings) -> Engine:
    """The store's engine as the settings describe it."""
    return make_engine(
        settings.db_url,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
    )


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other stores and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def make_engine(
    url: str, *, busy_timeout_ms: int = 30_000, synchronous: str = "NORMAL", **kwargs: Any
) -> Engine:
    """Create the engine; for SQLite set WAL, busy_timeout, foreign_keys and explicit BEGINs.

    Statement parameters are kept out of error messages: they can hold recipients' secrets.
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
            raise ValueError(f"unsupported store {parsed.get_backend_name()!r}")
        if parsed.get_backend_name() != "sqlite":
            return create_engine(
                url, pool_pre_ping=True, hide_parameters=True, json_serializer=json_dumps, **kwargs
            )
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            json_serializer=json_dumps,
            **kwargs,
        )
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"invalid database URL ({exc}); use sqlite:///PATH or postgresql+psycopg://…"
        ) from None
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    prepare_sqlite(engine, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return engine


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start; commits on success."""
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
        session.commit()


# ---- migrations -----------------------------------------------------------------------------


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the shipped ``migrations`` package."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest migration this code knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine, *, allow_behind: bool = True) -> str | None:
    """Refuse a database newer than this code; return its revision."""
    revision = current_revision(engine)
    if revision is None:
        return None
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise SchemaError(
            f"the database is at schema revision {revision!r}, which is newer than this version "
            "of notifyd knows; upgrade notifyd (or point it at another database)"
        )
    if not allow_behind and revision != script.get_current_head():
        raise SchemaError(
            f"the database is at schema revision {revision!r}; run `notifyd db upgrade`"
        )
    return revision


def upgrade(engine: Engine) -> str | None:
    """Apply every pending migration (after refusing a database newer than the code)."""
    check_schema(engine)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return current_revision(engine)
