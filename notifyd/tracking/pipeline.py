"""PostgreSQL: a group commit's transaction in one round trip (psycopg's pipeline mode).

Each statement of a transaction was a round trip of its own: ``BEGIN`` (psycopg sends it, and
waits for its answer, before the first statement), the batch's inserts, ``NOTIFY``,
``COMMIT``. The writer's thread waited for each answer and then for the GIL, which the busy
event loop holds: about a millisecond a round trip on two loaded cores, most of a group
commit's time, and the writer is the one thread every accepted request waits for. In pipeline
mode the statements go out together and their answers come back together: a transaction whose
writes need no answers is one round trip; a write that reads what its statement returns (a
claim's runs) waits for that answer through ``fetch_rows``, and the statements before it ride
along.

Only writes that say so run this way (``Job.pipelined``), and only where nothing listens to the
connection's statements (``available``): a write through SQLAlchemy that reads a result would
find none before the pipeline syncs. ``BEGIN`` and ``COMMIT`` are sent as
statements of the pipeline, with the driver in autocommit for the while (psycopg's own
``BEGIN`` would wait for its answer). An error is raised as SQLAlchemy raises the driver's
(``IntegrityError``, a lost connection invalidated), after the failed transaction is rolled
back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection

from notifyd.tracking.engine import observed

T = TypeVar("T")

log = logging.getLogger(__name__)


def available(conn: Connection) -> bool:
    """Whether ``conn``'s transactions may be pipelined: PostgreSQL through a libpq that
    pipelines (14 or newer; psycopg's binary package brings its own), with nothing listening
    to its statements (listeners see only those SQLAlchemy runs, and read their results)."""
    return conn.dialect.name == "postgresql" and not observed(conn) and _supported()


@functools.cache
def _supported() -> bool:
    from psycopg import Pipeline

    return bool(Pipeline.is_supported())


def transaction(conn: Connection, body: Callable[[], T]) -> T:
    """Run ``body`` (statements on ``conn``) in one transaction, pipelined; its result."""
    driver: Any = conn.connection.driver_connection
    if not conn.in_transaction():
        conn.begin()  # SQLAlchemy's own view; it sends nothing (the driver is told below)
    try:
        driver.autocommit = True
        with driver.pipeline():
            driver.execute("BEGIN")
            result = body()
            driver.execute("COMMIT")
    except Exception as exc:
        try:
            if isinstance(exc, conn.dialect.loaded_dbapi.Error):
                # Before anything else touches the connection: a lost one is invalidated.
                conn._handle_dbapi_exception(exc, "COMMIT", {}, None, None)
            raise
        finally:
            _abandon(conn, driver)
    driver.autocommit = False
    conn.commit()  # nothing is left open on the driver: SQLAlchemy's view ends too
    return result


def _abandon(conn: Connection, driver: Any) -> None:
    """After a failure: roll back what it left open, the driver back to transactions of its
    own. Best effort: on a lost connection these fail too, and the error raised is the one
    that lost it."""
    from psycopg.pq import TransactionStatus

    try:
        if not driver.closed and not driver.broken:
            if driver.pgconn.transaction_status != TransactionStatus.IDLE:
                driver.execute("ROLLBACK")
            driver.autocommit = False
    except Exception:
        log.debug("ending a failed pipelined transaction failed", exc_info=True)
    try:
        conn.rollback()
    except Exception:
        log.debug("rolling back a failed pipelined transaction failed", exc_info=True)


def fetch_rows(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[Any]:
    """Run ``sql`` and return its rows (named tuples), in a pipeline or not.

    In a pipeline this waits for the answers up to this statement's; through SQLAlchemy its
    result would be empty until the pipeline syncs. Errors are SQLAlchemy's, as for its own
    statements.
    """
    from psycopg.rows import namedtuple_row

    if observed(conn):  # listeners see it (never pipelined then: see ``available``)
        return list(conn.exec_driver_sql(sql, dict(params)).all())
    if not conn.in_transaction():
        conn.begin()  # the statement begins the driver's transaction: SQLAlchemy must end it
    driver: Any = conn.connection.driver_connection
    try:
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, sql, dict(params), None, None)
        raise
