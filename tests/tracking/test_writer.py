"""Group commit: many writers, one transaction each burst; one bad write does not sink the others."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from notifyd.db import make_engine, sqlite_path, write_connection
from notifyd.models import Notification
from notifyd.timeutil import utcnow
from notifyd.tracking import Writer
from notifyd.tracking import writer as writer_module
from notifyd.tracking.batches import Job, apply

NOTES = Notification.__table__  # type: ignore[attr-defined]
pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["thread", "inline"])
def writer(store: Engine, request: pytest.FixtureRequest) -> Iterator[Writer]:
    w = Writer(store, inline=request.param)
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


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_a_failing_check_before_commit_fails_the_whole_commit(
    store: Engine, inline: bool
) -> None:
    class Lost(Exception):
        pass

    checks: list[int] = []
    lost = False

    def check() -> None:
        checks.append(1)
        if lost:
            raise Lost("the store is gone")

    w = Writer(store, inline=inline, before_commit=check)
    w.start()
    try:
        await asyncio.gather(*(w.run(_insert(f"ok{i}")) for i in range(20)))
        # Once per group commit, not once per write: on the loop, one commit for the burst.
        assert len(checks) == 1 if inline else 1 <= len(checks) <= 20
        lost = True
        outcomes = await asyncio.gather(
            *(w.run(_insert(f"gone{i}")) for i in range(5)), return_exceptions=True
        )
    finally:
        w.stop()
    assert all(isinstance(outcome, Lost) for outcome in outcomes)
    assert _count(store) == 20  # nothing of the failed commits was kept


def test_run_sync_and_stop_drains_the_queue(store: Engine) -> None:
    writer = Writer(store)
    futures = [writer.submit(_insert(f"s{i}")) for i in range(50)]
    writer.stop()
    assert [f.result(timeout=5) for f in futures] == [f"s{i}" for i in range(50)]
    assert writer.run_sync(_insert("after-restart")) == "after-restart"
    writer.stop()


@pytest.fixture
def sqlite_store(migrated: Engine) -> Engine:
    return migrated


async def test_inline_writes_hand_off_when_another_process_holds_the_lock(
    sqlite_store: Engine,
) -> None:
    writer = Writer(sqlite_store, inline=True)
    assert writer.inline
    # Another process's writer holds the write lock meanwhile.
    with write_connection(sqlite_store):
        pending = asyncio.ensure_future(writer.run(_insert("waited")))
        ticks = 0
        for _ in range(20):  # the event loop keeps running while the write waits
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 20 and not pending.done()
    assert await asyncio.wait_for(pending, 30) == "waited"
    assert _count(sqlite_store) == 1
    writer.stop()


async def test_inline_writes_wait_for_a_held_lock_on_the_loop_and_commit_together(
    sqlite_store: Engine,
) -> None:
    # Waiting on the loop, not on the thread (which waits for the GIL the busy loop holds),
    # and the writes that come meanwhile join the batch.
    writer = Writer(sqlite_store, inline=True)
    with write_connection(sqlite_store):
        first = asyncio.ensure_future(writer.run(_insert("first")))
        for _ in range(5):
            await asyncio.sleep(0)
        second = asyncio.ensure_future(writer.run(_insert("second")))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done() and not second.done()
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 30)) == ["first", "second"]
    assert writer.transactions == 1  # one commit, once the lock was free
    writer.stop()
    assert _count(sqlite_store) == 2


async def test_inline_writes_go_to_the_thread_once_the_busy_timeout_is_spent(
    sqlite_store: Engine,
) -> None:
    impatient = make_engine(sqlite_store.url.render_as_string(False), busy_timeout_ms=30)
    writer = Writer(impatient, inline=True)
    try:
        with write_connection(sqlite_store):
            pending = writer.run(_insert("never"))
            with pytest.raises(OperationalError, match="database is locked"):
                await asyncio.wait_for(pending, 30)  # the loop's wait, then the thread's
        assert await writer.run(_insert("later")) == "later"
        writer.stop()
    finally:
        impatient.dispose()
    assert _count(sqlite_store) == 1


async def test_inline_writes_leave_the_wal_checkpoints_to_the_thread(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY", 3)
    checkpointed = threading.Event()
    writer = Writer(sqlite_store, inline=True)
    original = writer._checkpoint

    def checkpoint() -> None:
        original()
        checkpointed.set()

    monkeypatch.setattr(writer, "_checkpoint", checkpoint)
    for i in range(3):
        await writer.run(_insert(f"c{i}"))
    assert await asyncio.to_thread(checkpointed.wait, 30)
    with sqlite_store.connect() as conn:
        autocheckpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    assert autocheckpoint != 0  # the loop's own settings stayed with its connection
    writer.stop()
    assert _count(sqlite_store) == 3


def test_once_writes_run_once_per_transaction_after_the_jobs_own(store: Engine) -> None:
    calls: list[str] = []

    def once_a(conn: Connection) -> None:
        calls.append("a")

    def once_b(conn: Connection) -> None:
        calls.append("b")

    def own(conn: Connection) -> str:
        calls.append("own")
        return "own"

    jobs = [
        Job(own, (), (once_a,)),
        Job(None, (), (once_a, once_b)),
        Job(own, ()),
        Job(None, (), (once_b,)),
    ]
    with write_connection(store) as conn:
        assert apply(conn, jobs) == ["own", None, "own", None]
    assert calls == ["own", "own", "a", "b"]


async def test_the_wal_is_reused_while_inline_writes_never_pause(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints must catch up with a writer that never stops: else the WAL only grows (to
    gigabytes under a steady load) and every read searches more of it."""
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY", 10)
    writer = Writer(sqlite_store, inline=True)
    body = "x" * 3000  # each commit appends several pages

    def write(n: int) -> Callable[[Connection], None]:
        def insert_one(conn: Connection) -> None:
            conn.execute(
                insert(NOTES),
                {"id": f"w{n}", "channel": "log", "message": body, "recipients": ["a"],
                 "created_at": utcnow()},
            )  # fmt: skip

        return insert_one

    rounds, per_round = 300, 8
    for r in range(rounds):
        await asyncio.gather(*(writer.run(write(r * per_round + i)) for i in range(per_round)))
    writer.stop()
    database = sqlite_path(sqlite_store.url.render_as_string(hide_password=False))
    assert database is not None
    wal = database.with_name(database.name + "-wal").stat().st_size
    written = rounds * per_round * len(body)
    # Never started over, it would hold all that was written; started over, a few checkpoint
    # intervals' worth: a fifth of it, give or take (a bound of 1/5 failed 2 runs in 25).
    assert wal < written / 2, f"WAL {wal:,} bytes after {written:,} bytes written"


class _SlowHeldPass:
    """A raw connection whose held checkpoint pass waits to be let go, then runs or fails."""

    def __init__(self, raw: Any, fail: bool) -> None:
        self._raw, self.fail, self.passes = raw, fail, 0
        self.held, self.let_go = threading.Event(), threading.Event()

    @property
    def driver_connection(self) -> _SlowHeldPass:
        return self

    def execute(self, sql: str) -> Any:
        self.passes += 1
        if self.passes == writer_module.UNHELD_PASSES + 1:  # under the checkpoint lock
            self.held.set()
            self.let_go.wait(30)
            if self.fail:
                raise sqlite3.OperationalError("disk I/O error")
        return self._raw.driver_connection.execute(sql)

    def close(self) -> None:
        self._raw.close()


@pytest.mark.parametrize("fail", [False, True], ids=["held pass ends", "held pass fails"])
async def test_inline_writes_wait_on_the_loop_for_the_held_checkpoint_pass(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch, fail: bool
) -> None:
    """Handed to the thread, a write made during the held pass waited for the GIL the busy
    loop holds at every statement; it waits on the loop instead, and commits there."""
    writer = Writer(sqlite_store, inline=True)
    await writer.run(_insert("before"))  # an inline commit
    assert writer._since_checkpoint == 1
    slow = _SlowHeldPass(sqlite_store.raw_connection(), fail)
    original = sqlite_store.raw_connection

    def checkpoint_connection() -> Any:  # the checkpoint's only: SQLAlchemy asks for others
        monkeypatch.setattr(sqlite_store, "raw_connection", original)
        return slow

    monkeypatch.setattr(sqlite_store, "raw_connection", checkpoint_connection)
    checkpoint = asyncio.ensure_future(asyncio.to_thread(writer._checkpoint))
    assert await asyncio.to_thread(slow.held.wait, 30)
    during = asyncio.ensure_future(writer.run(_insert("during")))
    for _ in range(10):  # passes of the loop, not time: the write is not committed meanwhile
        await asyncio.sleep(0)
    assert not during.done()
    slow.let_go.set()
    await asyncio.wait_for(checkpoint, 30)  # a failed pass is logged; the next one tries again
    assert await asyncio.wait_for(during, 30) == "during"
    assert writer._since_checkpoint == 2  # committed on the loop, not by the thread
    writer.stop()
    assert _count(sqlite_store) == 2


def _busy_timeout(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


def test_the_thread_waits_for_a_held_sqlite_lock_itself_and_keeps_its_pragma(
    sqlite_store: Engine,
) -> None:
    writer = Writer(sqlite_store)
    with sqlite_store.connect() as conn:
        configured = _busy_timeout(conn)
    assert configured > 0
    holder = write_connection(sqlite_store)
    holder.__enter__()  # another writer holds the lock
    future = writer.submit(_insert("after the lock"))
    try:
        with pytest.raises(TimeoutError):
            future.result(timeout=0.2)  # waiting, not failed with "database is locked"
    finally:
        holder.__exit__(None, None, None)
    assert future.result(timeout=30) == "after the lock"
    # The thread looks at the lock itself (SQLite's handler would sleep ever longer).
    assert writer.run_sync(_busy_timeout) == 0
    writer.stop()
    with sqlite_store.connect() as conn:  # the pool's connections keep the engine's timeout
        assert _busy_timeout(conn) == configured
    assert _count(sqlite_store) == 1


def test_the_thread_gives_up_on_a_sqlite_lock_held_past_the_busy_timeout(
    sqlite_store: Engine,
) -> None:
    impatient = make_engine(sqlite_store.url.render_as_string(False), busy_timeout_ms=50)
    writer = Writer(impatient)
    try:
        with write_connection(sqlite_store):
            future = writer.submit(_insert("never"))
            with pytest.raises(OperationalError, match="database is locked"):
                future.result(timeout=30)
        assert writer.run_sync(_insert("later")) == "later"  # the connection is still good
        writer.stop()
    finally:
        impatient.dispose()
    assert _count(sqlite_store) == 1


async def test_a_commit_hook_runs_in_the_pass_that_learns_of_the_commit(
    writer: Writer,
) -> None:
    calls: list[str] = []
    resumed = False

    def hook(result: str) -> None:
        calls.append(f"{result}, caller resumed: {resumed}")

    result = await writer.run(_insert("hooked"), committed=hook)
    resumed = True
    assert result == "hooked" and calls == ["hooked, caller resumed: False"]
    with pytest.raises(IntegrityError):
        await writer.run(_insert("hooked"), committed=hook)  # the same id: rolled back
    assert len(calls) == 1  # a write that failed commits nothing and calls nothing
