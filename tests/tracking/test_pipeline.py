"""PostgreSQL's pipelined group commit: one round trip for writes that need no answers, the
answers a write reads on the way, and errors and lost connections as before."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from notifyd.models import Notification
from notifyd.timeutil import utcnow
from notifyd.tracking import Writer, pipeline
from notifyd.tracking.bulk import insert_rows
from notifyd.tracking.notify import notify_runs

NOTES = Notification.__table__  # type: ignore[attr-defined]
pytestmark = [pytest.mark.postgres, pytest.mark.anyio]


@pytest.fixture
def db_url(postgres_url: str) -> str:
    """PostgreSQL only (``store`` migrates it): pipelines are PostgreSQL's."""
    return postgres_url


@pytest.fixture
def writer(store: Engine) -> Iterator[Writer]:
    w = Writer(store)
    w.start()
    yield w
    w.stop()


def _note(note_id: str) -> dict[str, Any]:
    return {
        "id": note_id,
        "channel": "log",
        "message": "m",
        "recipients": ["a"],
        "created_at": utcnow(),
    }


def _ids(store: Engine) -> set[str]:
    with store.connect() as conn:
        return set(conn.execute(select(NOTES.c.id)).scalars())


class Trips:
    """The round trips a connection made: each run of messages it sent before an answer."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []  # (F or B, the message's name)

    @property
    def count(self) -> int:
        return sum(
            sent == "F" and answered == "B"
            for (sent, _), (answered, _) in zip(self.lines, self.lines[1:], strict=False)
        )


@contextmanager
def round_trips(conn: Connection) -> Iterator[Trips]:
    """libpq's trace of what ``conn`` sends and receives."""
    from psycopg.pq import Trace

    pgconn: Any = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    trips = Trips()
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield trips
        finally:
            pgconn.untrace()
            trace.seek(0)
            for line in trace:
                fields = line.split("\t")
                if len(fields) >= 3 and fields[0] in ("F", "B"):
                    trips.lines.append((fields[0], fields[2].strip()))


def _insert_and_notify(conn: Connection, note_id: str) -> None:
    insert_rows(conn, NOTES, [_note(note_id)])
    notify_runs(conn)


def test_writes_that_need_no_answers_commit_in_one_round_trip(store: Engine) -> None:
    with store.connect() as conn:
        with round_trips(conn) as classic, conn.begin():
            _insert_and_notify(conn, "c1")
        with round_trips(conn) as pipelined:
            pipeline.transaction(conn, lambda: _insert_and_notify(conn, "p1"))
    assert classic.count == 4  # BEGIN, the insert, NOTIFY, COMMIT
    assert pipelined.count == 1
    assert _ids(store) == {"c1", "p1"}


def test_a_write_reads_its_answer_with_the_statements_before_it(store: Engine) -> None:
    def body() -> list[Any]:
        insert_rows(conn, NOTES, [_note("n1"), _note("n2")])
        rows = pipeline.fetch_rows(conn, "SELECT id FROM notification ORDER BY id", {})
        notify_runs(conn)
        return rows

    with store.connect() as conn, round_trips(conn) as trips:
        rows = pipeline.transaction(conn, body)
    assert [row.id for row in rows] == ["n1", "n2"]  # it saw the insert queued before it
    assert trips.count == 2  # BEGIN, insert and select; NOTIFY and COMMIT
    with store.connect() as conn:
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def test_a_failed_pipelined_transaction_keeps_nothing_and_raises_sqlalchemys_error(
    store: Engine,
) -> None:
    with store.connect() as conn:
        pipeline.transaction(conn, lambda: conn.execute(insert(NOTES), [_note("dup")]))
        with pytest.raises(IntegrityError):
            pipeline.transaction(
                conn, lambda: conn.execute(insert(NOTES), [_note("new"), _note("dup")])
            )
        driver: Any = conn.connection.driver_connection
        assert driver.autocommit is False and not conn.in_transaction()
        # The connection goes on, pipelined or not.
        pipeline.transaction(conn, lambda: conn.execute(insert(NOTES), [_note("after")]))
        with conn.begin():
            conn.execute(insert(NOTES), [_note("classic")])
    assert _ids(store) == {"dup", "after", "classic"}


def test_fetch_rows_outside_a_pipeline_joins_sqlalchemys_transaction(store: Engine) -> None:
    with store.connect() as conn:
        rows = pipeline.fetch_rows(
            conn, "INSERT INTO notification (id, channel, message, recipients, created_at) "
            "VALUES ('f1', 'log', 'm', '[]', now()) RETURNING id", {}
        )  # fmt: skip
        assert [row.id for row in rows] == ["f1"] and conn.in_transaction()
        conn.rollback()
    assert _ids(store) == set()


def test_listeners_see_every_statement_and_nothing_is_pipelined(store: Engine) -> None:
    seen: list[str] = []

    def listen(*args: Any) -> None:
        seen.append(args[2])

    with store.connect() as conn:
        event.listen(conn, "before_cursor_execute", listen)
        assert not pipeline.available(conn)
        rows = pipeline.fetch_rows(conn, "SELECT 7 AS n", {})
        conn.rollback()
    assert [row.n for row in rows] == [7] and seen == ["SELECT 7 AS n"]


async def test_group_commits_pipeline_only_batches_whose_writes_say_so(
    store: Engine, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelined: list[int] = []
    real = pipeline.transaction

    def spy(conn: Connection, body: Any) -> Any:
        pipelined.append(1)
        return real(conn, body)

    monkeypatch.setattr(pipeline, "transaction", spy)

    def count(conn: Connection) -> int:  # reads its answer through SQLAlchemy: not pipelined
        return int(conn.execute(select(func.count()).select_from(NOTES)).scalar_one())

    def ids(conn: Connection) -> list[str]:
        return [row.id for row in pipeline.fetch_rows(conn, "SELECT id FROM notification", {})]

    await writer.run(inserts=[(NOTES, [_note("a")])])
    assert await writer.run(ids, pipelined=True) == ["a"]
    assert len(pipelined) == 2
    assert await writer.run(count) == 1
    assert len(pipelined) == 2
    first: list[Awaitable[None]] = [
        writer.run(inserts=[(NOTES, [_note(f"b{i}")])]) for i in range(20)
    ]
    await asyncio.gather(*first, writer.run(count), writer.run(ids, pipelined=True))
    _, counted, listed = await asyncio.gather(
        writer.run(inserts=[(NOTES, [_note("c")])]),
        writer.run(count),
        writer.run(ids, pipelined=True),
    )
    assert counted == len(listed) and "c" in listed
    assert len(_ids(store)) == 22


async def test_a_bad_write_in_a_pipelined_batch_fails_alone(store: Engine, writer: Writer) -> None:
    await writer.run(inserts=[(NOTES, [_note("dup")])])
    outcomes = await asyncio.gather(
        *(writer.run(inserts=[(NOTES, [_note(name)])]) for name in ("a", "dup", "b")),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)
    assert _ids(store) == {"dup", "a", "b"}


async def test_after_a_lost_connection_the_next_pipelined_write_commits(
    store: Engine, writer: Writer
) -> None:
    def backend(conn: Connection) -> int:
        return int(pipeline.fetch_rows(conn, "SELECT pg_backend_pid() AS pid", {})[0].pid)

    pid = await writer.run(backend, pipelined=True)
    with store.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 10000)")  # waits for it to end
        admin.commit()
    try:  # a batch that finds its connection lost fails (or, run again alone, commits)
        await writer.run(inserts=[(NOTES, [_note("x")])])
    except DBAPIError as exc:
        assert exc.connection_invalidated
    await writer.run(inserts=[(NOTES, [_note("after")])])
    assert await writer.run(backend, pipelined=True) != pid
    assert "after" in _ids(store)
