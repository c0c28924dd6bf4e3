"""Group commit: many writers, one transaction each burst; one bad write does not sink the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from notifyd.models import Notification
from notifyd.timeutil import utcnow
from notifyd.tracking import Writer

NOTES = Notification.__table__  # type: ignore[attr-defined]
pytestmark = pytest.mark.anyio


@pytest.fixture
def writer(store: Engine) -> Iterator[Writer]:
    w = Writer(store)
    w.start()
    yield w
    w.stop()


def _insert(note_id: str) -> Callable[[Connection], str]:
    def write(conn: Connection) -> str:
        conn.execute(
            insert(NOTES),
            {
                "id": note_id,
                "channel": "log",
                "message": "m",
                "recipients": ["a"],
                "created_at": utcnow(),
            },
        )
        return note_id

    return write


def _count(store: Engine) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(NOTES)).scalar_one())


async def test_concurrent_writes_all_commit_and_return_their_results(
    store: Engine, writer: Writer
) -> None:
    results = await asyncio.gather(*(writer.run(_insert(f"n{i}")) for i in range(300)))
    assert results == [f"n{i}" for i in range(300)]
    assert _count(store) == 300


async def test_a_failing_write_fails_alone(store: Engine, writer: Writer) -> None:
    await writer.run(_insert("dup"))
    outcomes = await asyncio.gather(
        *(writer.run(_insert(name)) for name in ("a", "dup", "b")),
        return_exceptions=True,
    )
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], Exception)
    assert _count(store) == 3


def test_run_sync_and_stop_drains_the_queue(store: Engine) -> None:
    writer = Writer(store)
    futures = [writer.submit(_insert(f"s{i}")) for i in range(50)]
    writer.stop()
    assert [f.result(timeout=5) for f in futures] == [f"s{i}" for i in range(50)]
    assert writer.run_sync(_insert("after-restart")) == "after-restart"
    writer.stop()
