"""The short way stores exactly what SQLAlchemy's own executemany stores, and leaves it the rest."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, StatementError

from notifyd.tracking import schema
from notifyd.tracking.admin import RUNS
from notifyd.tracking.bulk import execute_many, insert_rows, select_rows

WHEN = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def either_store(db_url: str, tmp_path: Any) -> Iterator[Engine]:
    """The tracking tables on SQLite, then on PostgreSQL (each store's own bulk path)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    engine = create_engine(db_url)
    schema.install(engine)
    yield engine
    engine.dispose()


def _run(run_id: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": run_id,
        "task_name": "deliver",
        "queue": "email",
        "label": "ünïcode <b>label</b>",
        "ref": "ntf_1",
        "args": {"to": ["a@example.com"], "n": 3, "nested": {"x": None}},
        "status": "queued",
        "attempts": 0,
        "max_attempts": 8,
        "interruptions": 0,
        "created_at": WHEN,
        "updated_at": WHEN,
        "next_attempt_at": WHEN + timedelta(hours=2),
    }
    return {**row, **overrides}


def _raw_rows(engine: Engine, ids: list[str]) -> list[tuple[Any, ...]]:
    """The rows as SQLite holds them (text, not what the types make of it on the way out)."""
    marks = ",".join("?" * len(ids))
    with engine.connect() as conn:
        query = f"SELECT * FROM task_run WHERE id IN ({marks}) ORDER BY id"
        return [tuple(row) for row in conn.exec_driver_sql(query, tuple(ids))]


def test_stores_exactly_what_sqlalchemy_stores(engine: Engine) -> None:
    ours = [_run("run_a1"), _run("run_a2", next_attempt_at=None, label=None)]
    theirs = [_run("run_b1"), _run("run_b2", next_attempt_at=None, label=None)]
    with engine.begin() as conn:
        insert_rows(conn, RUNS, ours)
        conn.execute(insert(RUNS), theirs)
    mine, reference = (
        _raw_rows(engine, ["run_a1", "run_a2"]),
        _raw_rows(engine, ["run_b1", "run_b2"]),
    )
    assert [row[1:] for row in mine] == [row[1:] for row in reference]
    with engine.connect() as conn:
        back = conn.execute(select(RUNS).where(RUNS.c.id == "run_a1")).one()
    assert back.created_at == WHEN and back.args == ours[0]["args"]
    assert back.crashes == 0  # a server default is left to the database


def test_a_python_side_default_is_filled_in_by_sqlalchemy(either_store: Engine) -> None:
    table = Table(
        "defaults", MetaData(), Column("id", String, primary_key=True),
        Column("n", Integer, default=7), Column("doc", JSON),
    )  # fmt: skip
    table.create(either_store)
    with either_store.begin() as conn:
        insert_rows(conn, table, [{"id": "a", "doc": [1]}, {"id": "b", "doc": None}])
        rows = conn.execute(select(table).order_by(table.c.id)).all()
    assert [tuple(row) for row in rows] == [("a", 7, [1]), ("b", 7, None)]


def test_errors_are_sqlalchemys_own(engine: Engine) -> None:
    with pytest.raises(StatementError, match="next_attempt_at"), engine.begin() as conn:
        rows = [_run("run_c1"), _run("run_c2")]
        del rows[1]["next_attempt_at"]  # a row without a column the first one has
        insert_rows(conn, RUNS, rows)
    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_d1")])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_d1")])  # the same id again
    assert len(_raw_rows(engine, ["run_c1", "run_c2", "run_d1"])) == 1


def test_execute_many_updates_exactly_as_sqlalchemy_does(engine: Engine) -> None:
    from notifyd.tracking.admin.worker import _CLAIM_RUN

    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run(f"run_{n}") for n in "abcd"])
    later = WHEN + timedelta(minutes=5)

    def claim(ids: str) -> list[dict[str, Any]]:
        return [
            {"b_id": f"run_{n}", "b_attempt": 1, "b_worker": "w1", "b_lease": later, "b_now": later}
            for n in ids
        ]

    with engine.begin() as conn:
        assert execute_many(conn, _CLAIM_RUN, claim("ab")) == 2
        conn.execute(_CLAIM_RUN, claim("cd"))  # SQLAlchemy's own way
        assert execute_many(conn, _CLAIM_RUN, claim("x")) == 0  # matched nothing
    ours, theirs = _raw_rows(engine, ["run_a", "run_b"]), _raw_rows(engine, ["run_c", "run_d"])
    assert [row[1:] for row in ours] == [row[1:] for row in theirs]
    with engine.connect() as conn:
        back = conn.execute(select(RUNS).where(RUNS.c.id == "run_a")).one()
    # The statement's own fixed value (status) and the rows' values, each as its type binds it.
    assert (back.status, back.worker, back.lease_expires_at) == ("running", "w1", later)
    assert back.started_at == later


def test_execute_many_leaves_a_missing_parameter_to_sqlalchemy(engine: Engine) -> None:
    from notifyd.tracking.admin.worker import _CLAIM_RUN

    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_e")])
    row = {"b_id": "run_e", "b_attempt": 1, "b_worker": "w", "b_lease": WHEN, "b_now": WHEN}
    with pytest.raises(StatementError, match="b_lease"), engine.begin() as conn:
        execute_many(conn, _CLAIM_RUN, [row, {k: v for k, v in row.items() if k != "b_lease"}])


def test_column_names_never_become_code(engine: Engine) -> None:
    odd = "x), __import__('os').system('false'), (y"
    table = Table(
        "odd", MetaData(), Column("id", String, primary_key=True), Column(odd, String),
        Column("doc", JSON),
    )  # fmt: skip
    table.create(engine)
    with engine.begin() as conn:
        insert_rows(conn, table, [{"id": "a", odd: "kept", "doc": {"k": [1, None]}}])
        rows = conn.execute(select(table)).all()
        read = select_rows(
            conn, select(table).where(table.c.id == bindparam("b_id")), {"b_id": "a"}
        )
    assert [tuple(row) for row in rows] == [("a", "kept", {"k": [1, None]})]
    assert [tuple(row) for row in read] == [("a", "kept", {"k": [1, None]})]
    assert not isinstance(read[0], Row)  # the short way read it


def test_each_engine_binds_with_its_own_settings(tmp_path: Any) -> None:
    """A plan holds its dialect's type processors: another engine's JSON serializer must not leak."""
    table = Table("docs", MetaData(), Column("id", String, primary_key=True), Column("doc", JSON))
    texts = []
    for name, serializer in [("a", lambda value: '"from engine a"'), ("b", None)]:
        options = {"json_serializer": serializer} if serializer else {}
        engine = create_engine(f"sqlite:///{tmp_path / name}.db", **options)
        table.create(engine)
        with engine.begin() as conn:
            insert_rows(conn, table, [{"id": "x", "doc": {"k": 1}}])
            texts.append(conn.exec_driver_sql("SELECT doc FROM docs").scalar_one())
        engine.dispose()
    assert texts == ['"from engine a"', '{"k": 1}']


def test_what_sqlalchemy_fills_in_or_refuses_is_left_to_it(engine: Engine) -> None:
    from sqlalchemy import bindparam, update

    table = Table(
        "filled", MetaData(), Column("id", String, primary_key=True), Column("n", Integer),
        Column("stamp", String, onupdate=lambda: "on update"), Column("doc", JSON),
    )  # fmt: skip
    table.create(engine)
    with engine.begin() as conn:
        insert_rows(conn, table, [{"id": "a", "n": 1, "stamp": None, "doc": [1]}])
        by_id = table.c.id == bindparam("b_id")
        execute_many(
            conn, update(table).where(by_id).values(n=bindparam("b_n")), [{"b_id": "a", "b_n": 2}]
        )
        execute_many(conn, update(table).where(by_id).values(doc=None), [{"b_id": "a"}])
        row = conn.execute(select(table)).one()
        raw_doc = conn.exec_driver_sql("SELECT doc FROM filled").scalar_one()
    assert (row.n, row.stamp) == (2, "on update")  # the onupdate SQLAlchemy computes
    assert raw_doc == "null"  # a fixed None bound as the JSON type binds it, as SQLAlchemy does
    with pytest.raises(StatementError), engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_bad", created_at="not a time")])


def test_the_hot_statements_take_the_short_way(engine: Engine) -> None:
    """Each of the writes the accept path and the dispatcher make goes out as plain driver SQL."""
    from sqlalchemy import event

    from notifyd.tracking.admin.worker import _CLAIM_RUN, _FINISH_ATTEMPT, _FINISH_RUN

    compiled_by_sqlalchemy: list[bool] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            compiled_by_sqlalchemy.append(context.compiled is not None)

    event.listen(engine, "before_cursor_execute", seen)
    later = WHEN + timedelta(seconds=1)
    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_h")])
        claim = {"b_id": "run_h", "b_attempt": 1, "b_worker": "w", "b_lease": later, "b_now": WHEN}
        execute_many(conn, _CLAIM_RUN, [claim])
        finished = {
            "b_run": "run_h", "b_worker": "w", "b_number": 1, "b_started": WHEN,
            "b_finished": later, "b_duration": 1.0,
            "b_outcome": "succeeded", "b_error_type": None, "b_error_message": None,
            "b_traceback": None, "b_delay": None, "b_response": {"ok": True},
        }  # fmt: skip
        assert execute_many(conn, _FINISH_ATTEMPT, [finished]) == 1
        done = {
            "b_run": "run_h", "b_worker": "w", "b_number": 1, "b_status": "succeeded",
            "b_next": None, "b_finished": later, "b_error": None, "b_updated": later,
            "b_released": 0,
        }  # fmt: skip
        assert execute_many(conn, _FINISH_RUN, [done]) == 1
    event.remove(engine, "before_cursor_execute", seen)
    # The tally trigger's own inserts run inside SQLite, unseen here.
    assert compiled_by_sqlalchemy == [False] * 4


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value of every table, as SQLite holds it (text, numbers, NULLs)."""
    from sqlalchemy import inspect as inspect_db

    dumped = {}
    with engine.connect() as conn:
        for table in sorted(inspect_db(engine).get_table_names()):
            rows = conn.exec_driver_sql(f'SELECT * FROM "{table}"').all()
            dumped[table] = sorted((tuple(row) for row in rows), key=repr)
    return dumped


def _whole_cycle(engine: Engine) -> None:
    """What the accept path and the dispatcher write for three runs: their notification and
    runs, the claim, and outcomes that succeed, retry and fail."""
    from notifyd.notifications.delivery import NOTIFICATIONS
    from notifyd.tracking.admin.worker import _CLAIM_RUN, _FINISH_ATTEMPT, _FINISH_RUN

    notification = {
        "id": "ntf_1", "channel": "webhook", "destination": None, "subject": "ünï <b>",
        "message": "line\nbreak\u2028", "data": {"k": [1, 2.5, None, True], "é": {"x": "y"}},
        "recipients": ["https://example.org/********"], "caller": "alice",
        "created_at": WHEN, "priority": 5, "send_at": WHEN + timedelta(minutes=3),
    }  # fmt: skip
    with engine.begin() as conn:
        insert_rows(conn, NOTIFICATIONS, [notification])
    ids = ["run_s", "run_r", "run_f"]
    later = WHEN + timedelta(seconds=2, microseconds=7)
    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run(i, next_attempt_at=WHEN) for i in ids])
    with engine.begin() as conn:
        claims = [
            {"b_id": i, "b_attempt": 1, "b_worker": "w:1", "b_lease": later, "b_now": WHEN}
            for i in ids
        ]
        assert execute_many(conn, _CLAIM_RUN, claims) == 3
    outcomes = {
        "run_s": ("succeeded", None, None, None, None, {"status": 200, "body": "ok ✓"}),
        "run_r": ("transient_error", "TimeoutError", "timed out", 5.5, later, None),
        "run_f": ("permanent_error", "PermanentError", "410 Gone", None, None, {"status": 410}),
    }
    status = {"run_s": "succeeded", "run_r": "retrying", "run_f": "failed"}
    with engine.begin() as conn:
        finished = [
            {
                "b_run": i, "b_worker": "w:1", "b_number": 1, "b_started": WHEN,
                "b_finished": later, "b_duration": 1234.5678,
                "b_outcome": outcome, "b_error_type": kind, "b_error_message": text,
                "b_traceback": "Traceback…" if kind else None, "b_delay": delay,
                "b_response": response,
            }
            for i, (outcome, kind, text, delay, _next, response) in outcomes.items()
        ]  # fmt: skip
        assert execute_many(conn, _FINISH_ATTEMPT, finished) == 3
        done = [
            {
                "b_run": i, "b_worker": "w:1", "b_number": 1, "b_status": status[i],
                "b_next": outcomes[i][4], "b_finished": None if i == "run_r" else later,
                "b_error": outcomes[i][2], "b_updated": later, "b_released": 0,
            }
            for i in ids
        ]  # fmt: skip
        assert execute_many(conn, _FINISH_RUN, done) == 3


def test_a_whole_cycle_stores_identical_rows_every_way(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated rows sent to the driver directly, the same rows through SQLAlchemy's
    execution (as when a listener watches the statements) and SQLAlchemy's plain executemany
    leave byte-identical stores."""
    from sqlalchemy import event

    from notifyd.notifications.delivery import NOTIFICATIONS
    from notifyd.tracking import bulk

    stores = {}
    plain_sql = Connection.exec_driver_sql
    for way in ("driver", "generated", "plain"):
        engine = create_engine(f"sqlite:///{tmp_path / way}.db")
        schema.install(engine)
        NOTIFICATIONS.create(engine)
        compiled: list[bool] = []

        def seen(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: Any) -> None:
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
                compiled.append(context.compiled is not None)  # noqa: B023 - read at once

        through_sqlalchemy: list[str] = []

        def counted(conn: Connection, sql: str, *args: Any, **kwargs: Any) -> Any:
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
                through_sqlalchemy.append(sql)  # noqa: B023 - read at once
            return plain_sql(conn, sql, *args, **kwargs)

        with monkeypatch.context() as patch:
            if way == "driver":
                patch.setattr(Connection, "exec_driver_sql", counted)
            else:
                event.listen(engine, "before_cursor_execute", seen)
            if way == "plain":
                patch.setattr(bulk, "_short_way", lambda dialect: False)
            _whole_cycle(engine)
        # Each way really was taken: five writes, none (or all) compiled by SQLAlchemy; with
        # nothing listening, none of them through SQLAlchemy's execution at all.
        if way == "driver":
            assert through_sqlalchemy == [] and compiled == []
        else:
            assert compiled == [way == "plain"] * 5
        stores[way] = _dump(engine)
        engine.dispose()
    assert stores["driver"] == stores["generated"] == stores["plain"]
    assert len(stores["plain"]["task_run"]) == 3 and len(stores["plain"]["attempt"]) == 3


def test_a_driver_error_is_sqlalchemys_and_the_transaction_rolls_back(engine: Engine) -> None:
    """Sent to the driver directly, a refused row raises SQLAlchemy's own exception (with the
    statement) and nothing of the transaction stays."""
    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_e1")])
    with (
        pytest.raises(IntegrityError, match="INSERT INTO task_run") as raised,
        engine.begin() as conn,
    ):
        insert_rows(conn, RUNS, [_run("run_e2")])
        insert_rows(conn, RUNS, [_run("run_e3"), _run("run_e1")])  # the second is taken
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert [row[0] for row in _raw_rows(engine, ["run_e1", "run_e2", "run_e3"])] == ["run_e1"]
    with engine.begin() as conn:  # the connection is usable after the error
        insert_rows(conn, RUNS, [_run("run_e2")])
    assert len(_raw_rows(engine, ["run_e1", "run_e2"])) == 2


def test_the_generated_source_is_the_one_its_docstring_shows(engine: Engine) -> None:
    from notifyd.tracking import bulk
    from notifyd.tracking.admin.worker import _CLAIM_RUN

    keys = ("b_id", "b_attempt", "b_worker", "b_lease", "b_now")
    plan = bulk._compile_plan(_CLAIM_RUN.compile(dialect=engine.dialect), keys, engine.dialect)
    assert plan is not None
    assert plan.source in (bulk._row_function.__doc__ or "")
    assert plan.source.startswith("lambda row: (f0, row[k1], p2(row[k2])")
