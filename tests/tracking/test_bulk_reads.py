"""``select_rows`` reads exactly what SQLAlchemy's own rows hold, and leaves it the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Engine,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import StatementError

from notifyd.db import engine_for
from notifyd.tracking import schema
from notifyd.tracking.admin import RUNS
from notifyd.tracking.admin.worker import _DUE
from notifyd.tracking.bulk import insert_rows, select_rows
from tests.conftest import make_settings

WHEN = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _run(run_id: str, due: datetime, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": run_id, "task_name": "deliver", "queue": "email", "label": "ünï <b>label</b>",
        "ref": "ntf_1", "args": {"to": ["a@example.com"], "nested": {"x": None}},
        "status": "queued", "attempts": 0, "max_attempts": 8, "interruptions": 0,
        "created_at": WHEN, "updated_at": WHEN, "next_attempt_at": due, "trace_context": None,
    }  # fmt: skip
    return {**row, **overrides}


def _due_params(limit: int = 10) -> dict[str, Any]:
    return {"b_now": WHEN + timedelta(hours=1), "b_limit": limit}


def test_the_claims_due_runs_read_as_sqlalchemy_reads_them(engine: Engine) -> None:
    runs = [
        _run("run_a", WHEN),
        _run("run_b", WHEN - timedelta(minutes=1), label=None, queue=None),
        _run("run_c", WHEN + timedelta(hours=2)),  # not due yet
        _run("run_d", WHEN, status="succeeded"),  # not in a due state
    ]
    with engine.begin() as conn:
        insert_rows(conn, RUNS, runs)
        query = _DUE["queued", False]
        ours = select_rows(conn, query, _due_params())
        theirs = conn.execute(query, _due_params()).all()
    assert not any(isinstance(row, Row) for row in ours)  # the short way, not SQLAlchemy's
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    assert [row._asdict() for row in ours] == [row._asdict() for row in theirs]
    first = ours[0]
    assert (first.id, first.created_at, first.args) == ("run_b", WHEN, runs[1]["args"])
    assert first.created_at.tzinfo is not None  # each value through its column's type
    with engine.begin() as conn:
        assert [row.id for row in select_rows(conn, query, _due_params(limit=1))] == ["run_b"]


def test_notification_contents_read_by_ids_as_sqlalchemy_reads_them(
    db_url: str, tmp_path: Any
) -> None:
    """A worker's read of what it delivers, on each store: the ids as one JSON array on
    SQLite, one array parameter on PostgreSQL; the same contents as SQLAlchemy's own rows."""
    from notifyd.db import upgrade
    from notifyd.notifications.delivery import (
        _CONTENT,
        _CONTENT_BY_IDS,
        _CONTENT_BY_IDS_JSON,
        NOTIFICATIONS,
        DeliveryContext,
        NotificationContent,
    )

    (tmp_path / "home").mkdir(exist_ok=True)
    engine = engine_for(make_settings(tmp_path / "home", db_url))
    upgrade(engine)
    odd = "ntf_x'); DROP TABLE notification; --"
    notes = [
        {"id": f"ntf_{n}", "channel": "log", "subject": None if n == 2 else f"s{n}",
         "message": "ünïcode", "data": {"n": n} if n else None, "recipients": ["r"],
         "created_at": WHEN + timedelta(seconds=n), "priority": 3}
        for n in range(3)
    ] + [{"id": odd, "channel": "log", "subject": "s", "message": "m", "data": None,
          "recipients": [], "created_at": WHEN, "priority": 5}]  # fmt: skip
    try:
        with engine.begin() as conn:
            conn.execute(NOTIFICATIONS.insert(), notes)
        ids = ["ntf_2", odd, "ntf_0", "ntf_missing"]
        query = _CONTENT_BY_IDS_JSON if engine.dialect.name == "sqlite" else _CONTENT_BY_IDS
        with engine.connect() as conn:
            ours = select_rows(conn, query, {"b_ids": ids})
            theirs = conn.execute(_CONTENT.where(NOTIFICATIONS.c.id.in_(ids))).all()
            assert conn.execute(select(NOTIFICATIONS.c.id)).all()  # the table is still there
        assert not any(isinstance(row, Row) for row in ours)  # the short way on both stores
        by_id = {row.id: row._asdict() for row in theirs}
        assert {row.id: row._asdict() for row in ours} == by_id
        assert sorted(by_id) == sorted(["ntf_0", "ntf_2", odd])
        loaded = DeliveryContext(engine, {})._load_many(ids)
        assert loaded == {key: NotificationContent.from_row(row) for key, row in by_id.items()}
        assert loaded["ntf_0"].created_at == WHEN
        assert loaded["ntf_2"].subject is None and loaded["ntf_0"].data is None
    finally:
        engine.dispose()


def test_a_listened_to_connection_and_a_refused_value_go_sqlalchemys_way(engine: Engine) -> None:
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    with engine.begin() as conn:
        insert_rows(conn, RUNS, [_run("run_e", WHEN)])
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.begin() as conn:
            rows = select_rows(conn, _DUE["queued", False], _due_params())
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert [row.id for row in rows] == ["run_e"] and all(isinstance(r, Row) for r in rows)
    assert any("FROM task_run" in statement for statement in seen)  # listeners saw the read
    with pytest.raises(StatementError), engine.begin() as conn:
        select_rows(conn, _DUE["queued", False], {"b_now": "not a time", "b_limit": 1})


def test_either_store_reads_the_due_runs(db_url: str, tmp_path: Any) -> None:
    """SQLite the short way, PostgreSQL through SQLAlchemy: the same rows."""
    (tmp_path / "home").mkdir(exist_ok=True)
    engine = create_engine(db_url)
    schema.install(engine)
    try:
        with engine.begin() as conn:
            insert_rows(conn, RUNS, [_run("run_f", WHEN)])
            rows = select_rows(conn, _DUE["queued", False], _due_params())
        assert [(row.id, row.created_at) for row in rows] == [("run_f", WHEN)]
    finally:
        engine.dispose()
