"""What the tracker needs of an engine: SQLite set up for one writer, and write transactions.

On SQLite a write transaction must take the write lock when it begins (``BEGIN IMMEDIATE``), so
that it waits for another process's writer (``busy_timeout``) instead of failing with "database
is locked" when it first writes. ``prepare_sqlite`` installs that, with WAL and foreign keys (the
``attempt`` rows go with their run); connections asked for with ``WRITE_OPTION`` begin so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

WRITE_OPTION = "tracking_write"


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps with its defaults builds a new C encoder for every value, which cost more than the
# encoding itself (a few of them for every run written); this one is built once.
_ENCODE = (
    c_make_encoder(None, _not_json, encode_basestring_ascii, None, ": ", ", ", False, False, True)
    if c_make_encoder is not None
    else None
)


def _as_record_value(value: Any) -> Any:
    # A naive datetime is UTC here (UTCDateTime's processor made it so): PostgreSQL reads its
    # ISO text back as the same moment. An aware one would be read with its offset dropped.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat()
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return _not_json(value)


# Compact, and NaN refused (PostgreSQL's JSON has none): a value it cannot take fails here.
_ENCODE_RECORDS = (
    c_make_encoder(
        None, _as_record_value, encode_basestring_ascii, None, ":", ",", False, False, False
    )
    if c_make_encoder is not None
    else None
)


def records_json(rows: list[dict[str, Any]]) -> str:
    """Rows of bound values as one JSON text for PostgreSQL's ``json_to_recordset``: times as
    ISO text; raises for a value JSON cannot carry exactly."""
    if _ENCODE_RECORDS is None:
        return json.dumps(rows, default=_as_record_value, allow_nan=False, separators=(",", ":"))
    return "".join(_ENCODE_RECORDS(rows, 0))


def json_dumps(value: Any) -> str:
    """``json.dumps(value)``, the same text, faster: the engines' JSON serializer.

    Without its check for circular references: such a value fails with RecursionError instead.
    """
    if value is None:
        return "null"
    if _ENCODE is None:  # a Python without the C accelerator
        return json.dumps(value)
    return "".join(_ENCODE(value, 0))


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def observed(conn: Connection) -> bool:
    """Whether anything listens to the statements ``conn`` runs (tests, instrumentation):
    they must then go through SQLAlchemy, where listeners see them."""
    dispatch = conn.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def prepare_sqlite(
    engine: Engine, *, busy_timeout_ms: int = 30_000, synchronous: str = "NORMAL"
) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for write transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # A WAL that grew while a long read held it is cut back when it next starts over.
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN"
        # Straight to the driver: through SQLAlchemy's execution context it cost ~15 us, a
        # third of what a group commit's transaction cost in Python. A failure (the write lock
        # held elsewhere) is raised as SQLAlchemy raises its own.
        driver = conn.connection.driver_connection
        if driver is None:
            conn.exec_driver_sql(statement)
            return
        try:
            driver.execute(statement)
        except Exception as exc:
            conn._handle_dbapi_exception(exc, statement, (), None, None)


def tracking_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the tracker: ``prepare_sqlite`` applied on SQLite, pre-ping elsewhere."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, json_serializer=json_dumps, **kwargs
        )
        prepare_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_dumps, **kwargs)


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (the write lock taken at once); commits on success."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn
