"""On PostgreSQL a batch's rows go in as one INSERT of one JSON document: it stores exactly what
SQLAlchemy's own executemany stores, and leaves it what it fills in or refuses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, StatementError

from notifyd.tracking import schema
from notifyd.tracking.admin import RUNS
from notifyd.tracking.bulk import insert_rows
from tests.tracking.test_bulk import _run

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    schema.install(engine)
    yield engine
    engine.dispose()


def _stored(engine: Engine, ids: list[str]) -> list[str]:
    """Each row as PostgreSQL's own text of it, the id left out."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (to_jsonb(t) - 'id')::text FROM task_run t WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": ids},
        )
        return [row[0] for row in rows]


def test_stores_exactly_what_sqlalchemy_stores(pg: Engine) -> None:
    ours = [_run("run_a1"), _run("run_a2", next_attempt_at=None, label=None, args={})]
    theirs = [_run("run_b1"), _run("run_b2", next_attempt_at=None, label=None, args={})]
    statements: list[str] = []
    event.listen(pg, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pg.begin() as conn:
        insert_rows(conn, RUNS, ours)
        assert len(statements) == 1 and "json_to_recordset" in statements[0]
        conn.execute(insert(RUNS), theirs)
    assert _stored(pg, ["run_a1", "run_a2"]) == _stored(pg, ["run_b1", "run_b2"])
    with pg.connect() as conn:
        back = conn.execute(select(RUNS).where(RUNS.c.id == "run_a1")).one()
    assert back.args == ours[0]["args"] and back.label == ours[0]["label"]
    assert back.crashes == 0  # a server default is left to the database


def test_json_none_is_stored_as_sqlalchemy_stores_it(pg: Engine) -> None:
    table = Table("docs", MetaData(), Column("id", String, primary_key=True), Column("doc", JSON))
    table.create(pg)
    with pg.begin() as conn:
        insert_rows(conn, table, [{"id": "a", "doc": None}, {"id": "b", "doc": {"k": "é"}}])
        conn.execute(insert(table), [{"id": "c", "doc": None}, {"id": "d", "doc": {"k": "é"}}])
        stored = list(
            conn.exec_driver_sql("SELECT doc::text FROM docs ORDER BY id").scalars().all()
        )
    assert stored[:2] == stored[2:]


def test_errors_are_sqlalchemys_own(pg: Engine) -> None:
    with pytest.raises(StatementError, match="next_attempt_at"), pg.begin() as conn:
        rows = [_run("run_c1"), _run("run_c2")]
        del rows[1]["next_attempt_at"]
        insert_rows(conn, RUNS, rows)
    with pg.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_d1")])
    with pytest.raises(IntegrityError), pg.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_d1"), _run("run_d2")])
    assert len(_stored(pg, ["run_c1", "run_c2", "run_d1", "run_d2"])) == 1


def test_a_batch_of_several_tables_is_one_statement_parents_first(pg: Engine) -> None:
    from notifyd.tracking.admin import ATTEMPTS
    from notifyd.tracking.bulk import insert_tables

    attempt = {
        "run_id": "run_e1",
        "number": 1,
        "worker": "w",
        "started_at": _run("x")["created_at"],
    }
    statements: list[str] = []
    event.listen(pg, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pg.begin() as conn:
        insert_tables(
            conn,
            [
                (RUNS, [_run("run_e1"), _run("run_e2", label=None)]),
                (ATTEMPTS, [{**attempt, "outcome": "running"}]),
                (RUNS.metadata.tables["task_run_tally"], []),
            ],
        )
        conn.execute(insert(RUNS), [_run("run_f1"), _run("run_f2", label=None)])
    assert len(statements) == 2 and statements[0].startswith("WITH w0 AS (INSERT")
    assert _stored(pg, ["run_e1", "run_e2"]) == _stored(pg, ["run_f1", "run_f2"])
    with pg.connect() as conn:
        assert conn.execute(select(ATTEMPTS.c.run_id)).scalars().all() == ["run_e1"]
    # A child whose parent is missing is refused, as the database refuses it.
    with pytest.raises(IntegrityError), pg.begin() as conn:
        insert_tables(
            conn,
            [
                (RUNS, [_run("run_g1")]),
                (ATTEMPTS, [{**attempt, "run_id": "run_none", "outcome": "x"}]),
            ],
        )


def test_a_value_json_cannot_carry_goes_sqlalchemys_way(pg: Engine) -> None:
    table = Table(
        "measures",
        MetaData(),
        Column("id", String, primary_key=True),
        Column("value", Float),
        Column("at", DateTime(timezone=False)),
    )
    table.create(pg)
    statements: list[str] = []
    event.listen(pg, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pg.begin() as conn:
        insert_rows(conn, table, [{"id": "plain", "value": 1.5, "at": datetime(2026, 12, 7)}])
        insert_rows(conn, table, [{"id": "nan", "value": float("nan"), "at": None}])
        aware = datetime(2026, 12, 7, 3, tzinfo=timezone(timedelta(hours=2)))
        insert_rows(conn, table, [{"id": "aware", "value": 0.0, "at": aware}])
    assert "json_to_recordset" in statements[0]
    assert all("json_to_recordset" not in statement for statement in statements[1:])
    with pg.connect() as conn:
        stored = dict(conn.execute(select(table.c.id, table.c.value)).all())
    assert stored["plain"] == 1.5 and math.isnan(stored["nan"]) and stored["aware"] == 0.0
