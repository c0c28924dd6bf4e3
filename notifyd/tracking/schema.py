"""Create or upgrade the tracker's tables in an app's own database.

notifyd itself manages them with its Alembic migrations; an app that uses ``notifyd.tracking``
as a library calls ``install(engine)`` at start instead. It creates ``task_run`` and
``attempt`` (and the one-row ``tracking_schema`` version table) and nothing else, applies any
upgrade a newer version of the library needs, and refuses a database made by a newer one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, Engine, Index, Integer, MetaData, Table, inspect, select

from notifyd.tracking.engine import write_connection
from notifyd.tracking.models import Outcome, RunStatus, metadata, runs

SCHEMA_VERSION = 5
_versions = MetaData()
_OPEN, _RUNNING = Outcome.running.value, RunStatus.running.value
VERSION_TABLE = Table("tracking_schema", _versions, Column("version", Integer, nullable=False))


def _add_trace_context(conn: Connection) -> None:
    """Version 2: ``task_run.trace_context`` (a nullable column: a plain ALTER TABLE)."""
    conn.exec_driver_sql("ALTER TABLE task_run ADD COLUMN trace_context VARCHAR(200)")


def _statement_tally(conn: Connection) -> None:
    """Version 3: on PostgreSQL the tally's triggers fire once per statement (see below)."""
    replace_tally_triggers_v2(conn)


def partial_due_index(conn: Connection) -> None:
    """Version 4: ``ix_task_run_due`` holds only runs in a due state (``models.DUE_STATE``)."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_task_run_due")
    _due_index().create(conn)


def full_due_index(conn: Connection) -> None:
    """Back to version 3's due index over every run (notifyd's downgrade)."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_task_run_due")
    conn.exec_driver_sql("CREATE INDEX ix_task_run_due ON task_run (status, next_attempt_at)")


def attempts_written_at_end(conn: Connection) -> None:
    """Version 5: an attempt's row is written when it ends; ``task_run.attempt_started_at``
    holds when the one under way began, and the rows of attempts under way move onto it."""
    kind = runs.c.attempt_started_at.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE task_run ADD COLUMN attempt_started_at {kind}")
    conn.exec_driver_sql(
        "UPDATE task_run SET attempt_started_at = (SELECT a.started_at FROM attempt a"
        " WHERE a.run_id = task_run.id AND a.number = task_run.attempts"
        f" AND a.outcome = '{_OPEN}') WHERE status = '{_RUNNING}'"
    )
    conn.exec_driver_sql(
        f"DELETE FROM attempt WHERE outcome = '{_OPEN}' AND EXISTS (SELECT 1 FROM task_run r"
        " WHERE r.id = attempt.run_id AND r.attempts = attempt.number"
        f" AND r.status = '{_RUNNING}' AND r.attempt_started_at IS NOT NULL)"
    )


def attempts_opened_at_claim(conn: Connection) -> None:
    """Back to version 4: attempts under way have rows again (notifyd's downgrade)."""
    conn.exec_driver_sql(
        "INSERT INTO attempt (run_id, number, worker, started_at, outcome)"
        f" SELECT id, attempts, worker, attempt_started_at, '{_OPEN}' FROM task_run"
        f" WHERE status = '{_RUNNING}' AND attempt_started_at IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM attempt a WHERE a.run_id = task_run.id AND a.number = task_run.attempts)"
    )
    conn.exec_driver_sql("ALTER TABLE task_run DROP COLUMN attempt_started_at")


def _due_index() -> Index:
    return next(index for index in runs.indexes if index.name == "ix_task_run_due")


# Upgrades from version N to N+1, in order; UPGRADES[0] takes version 1 to 2. Append only.
UPGRADES: list[Callable[[Connection], None]] = [
    _add_trace_context,
    _statement_tally,
    partial_due_index,
    attempts_written_at_end,
]


class SchemaMismatch(RuntimeError):
    """The tables exist but are not the ones this version of the library reads and writes."""


def _check_columns(conn: Connection) -> None:
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        found = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.c.keys()) - found)
        if missing:
            raise SchemaMismatch(
                f"table {table.name!r} lacks column(s) {', '.join(missing)}: "
                "it was not made by notifyd.tracking.schema.install"
            )


def installed_version(engine: Engine) -> int | None:
    """The schema version recorded in the database (None before ``install``)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE.name):
            return None
        return conn.execute(select(VERSION_TABLE.c.version)).scalar_one_or_none()


def install(engine: Engine) -> int:
    """Create the tracker's tables, or upgrade them; returns the schema version now in place."""
    with write_connection(engine) as conn:
        _versions.create_all(conn)
        version = conn.execute(select(VERSION_TABLE.c.version)).scalar_one_or_none()
        if version is None:
            fresh = not inspect(conn).has_table("task_run")
            metadata.create_all(conn)
            _check_columns(conn)
            if fresh:
                create_tally_triggers(conn)
                replace_tally_triggers_v2(conn)
            conn.execute(VERSION_TABLE.insert().values(version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the tracking tables are at version {version}, newer than this library "
                f"({SCHEMA_VERSION}); upgrade it"
            )
        for step in UPGRADES[version - 1 :]:
            step(conn)
        conn.execute(VERSION_TABLE.update().values(version=SCHEMA_VERSION))
        return SCHEMA_VERSION


# ---- the run tally's triggers ----------------------------------------------------------------

_SQLITE_TALLY = (
    """CREATE TRIGGER task_run_tally_insert AFTER INSERT ON task_run BEGIN
    INSERT INTO task_run_tally (queue, status, delta) VALUES (NEW.queue, NEW.status, 1);
END""",
    """CREATE TRIGGER task_run_tally_update AFTER UPDATE OF status, queue ON task_run
WHEN OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue BEGIN
    INSERT INTO task_run_tally (queue, status, delta) VALUES (OLD.queue, OLD.status, -1);
    INSERT INTO task_run_tally (queue, status, delta) VALUES (NEW.queue, NEW.status, 1);
END""",
    """CREATE TRIGGER task_run_tally_delete AFTER DELETE ON task_run BEGIN
    INSERT INTO task_run_tally (queue, status, delta) VALUES (OLD.queue, OLD.status, -1);
END""",
)
_POSTGRESQL_TALLY = (
    """CREATE FUNCTION task_run_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_run_tally (queue, status, delta) VALUES (OLD.queue, OLD.status, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO task_run_tally (queue, status, delta) VALUES (NEW.queue, NEW.status, 1);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER task_run_tally_insert_delete AFTER INSERT OR DELETE ON task_run
FOR EACH ROW EXECUTE FUNCTION task_run_tally()""",
    """CREATE TRIGGER task_run_tally_update AFTER UPDATE OF status, queue ON task_run
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.queue IS DISTINCT FROM NEW.queue)
EXECUTE FUNCTION task_run_tally()""",
)
_DROP_TALLY = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS task_run_tally_insert",
        "DROP TRIGGER IF EXISTS task_run_tally_update",
        "DROP TRIGGER IF EXISTS task_run_tally_delete",
    ),
    "postgresql": (
        "DROP TRIGGER IF EXISTS task_run_tally_insert_delete ON task_run",
        "DROP TRIGGER IF EXISTS task_run_tally_update ON task_run",
        "DROP FUNCTION IF EXISTS task_run_tally()",
    ),
}


def create_tally_triggers(conn: Connection) -> None:
    """Install the triggers that keep ``task_run_tally`` exact, and count the runs already there.

    Version 1 of the triggers; a migration that needs them calls this by name.
    """
    statements = _POSTGRESQL_TALLY if conn.dialect.name == "postgresql" else _SQLITE_TALLY
    for statement in statements:
        conn.exec_driver_sql(statement)
    conn.exec_driver_sql(
        "INSERT INTO task_run_tally (queue, status, delta) "
        "SELECT queue, status, count(*) FROM task_run GROUP BY queue, status"
    )


def drop_tally_triggers(conn: Connection) -> None:
    """Remove the tally's triggers (a downgrade)."""
    for statement in _DROP_TALLY.get(conn.dialect.name, _DROP_TALLY["sqlite"]):
        conn.exec_driver_sql(statement)


# Version 2, PostgreSQL only: one trigger call per statement, reading the statement's rows as
# transition tables and inserting one tally row per (queue, status) it moved. Row-level
# PL/pgSQL cost a function call and an insert per run per move, which made PostgreSQL's share
# of an accepted-and-delivered notification about a third larger; a group commit of 30 runs
# now adds one tally row, not 30. An UPDATE trigger with transition tables may not name
# columns, so it fires for every UPDATE (a lease renewal, say) and adds nothing when no run
# changed queue or status. SQLite has no statement triggers; its row triggers are cheap C.
_POSTGRESQL_TALLY_V2 = (
    """CREATE FUNCTION task_run_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_run_tally (queue, status, delta)
    SELECT queue, status, count(*) FROM tally_new GROUP BY queue, status;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION task_run_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_run_tally (queue, status, delta)
    SELECT queue, status, -count(*) FROM tally_old GROUP BY queue, status;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION task_run_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_run_tally (queue, status, delta)
    SELECT queue, status, sum(delta)::integer FROM (
        SELECT queue, status, 1 AS delta FROM tally_new
        UNION ALL
        SELECT queue, status, -1 AS delta FROM tally_old
    ) AS moved
    GROUP BY queue, status
    HAVING sum(delta) <> 0;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER task_run_tally_insert AFTER INSERT ON task_run
REFERENCING NEW TABLE AS tally_new
FOR EACH STATEMENT EXECUTE FUNCTION task_run_tally_inserted()""",
    """CREATE TRIGGER task_run_tally_delete AFTER DELETE ON task_run
REFERENCING OLD TABLE AS tally_old
FOR EACH STATEMENT EXECUTE FUNCTION task_run_tally_deleted()""",
    """CREATE TRIGGER task_run_tally_update AFTER UPDATE ON task_run
REFERENCING OLD TABLE AS tally_old NEW TABLE AS tally_new
FOR EACH STATEMENT EXECUTE FUNCTION task_run_tally_updated()""",
)
_DROP_TALLY_V2 = (
    "DROP TRIGGER IF EXISTS task_run_tally_insert ON task_run",
    "DROP TRIGGER IF EXISTS task_run_tally_delete ON task_run",
    "DROP TRIGGER IF EXISTS task_run_tally_update ON task_run",
    "DROP FUNCTION IF EXISTS task_run_tally_inserted()",
    "DROP FUNCTION IF EXISTS task_run_tally_deleted()",
    "DROP FUNCTION IF EXISTS task_run_tally_updated()",
)


def replace_tally_triggers_v2(conn: Connection) -> None:
    """Version 2 of the triggers: on PostgreSQL, version 1's row triggers become statement
    triggers (in the same transaction, so no move goes uncounted); elsewhere nothing changes."""
    if conn.dialect.name != "postgresql":
        return
    for statement in _DROP_TALLY["postgresql"]:
        conn.exec_driver_sql(statement)
    for statement in _POSTGRESQL_TALLY_V2:
        conn.exec_driver_sql(statement)


def restore_tally_triggers_v1(conn: Connection) -> None:
    """Back from version 2 to version 1's row triggers (a downgrade); the tally stays exact."""
    if conn.dialect.name != "postgresql":
        return
    for statement in _DROP_TALLY_V2:
        conn.exec_driver_sql(statement)
    for statement in _POSTGRESQL_TALLY:
        conn.exec_driver_sql(statement)
