"""The SQLite store watcher: a process that only delivers claims other processes' runs at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from notifyd.db import make_engine, upgrade, write_connection
from notifyd.tracking import DispatcherConfig, RetryPolicies, TaskRegistry
from notifyd.tracking.tasks import TaskBatch
from notifyd.tracking.tracker import Tracker
from notifyd.tracking.watch import StoreWatcher, can_watch
from tests.tracking.conftest import wait_status

pytestmark = pytest.mark.anyio


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'notifyd.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


async def test_a_commit_by_another_connection_wakes_once(sqlite_store: Engine) -> None:
    wakes: list[None] = []
    watcher = StoreWatcher(sqlite_store, lambda: wakes.append(None), seconds=0.001)
    watcher.start()
    try:
        await watcher.looked(5)
        assert wakes == []  # nothing committed, nothing to look for
        with write_connection(sqlite_store) as conn:  # another process's commit
            conn.execute(text("INSERT INTO task_run_tally (status, delta) VALUES ('queued', 0)"))
        await watcher.looked(2)
        assert wakes == [None]
        await watcher.looked(5)
        assert wakes == [None]  # once per change, not once per look
    finally:
        await watcher.stop()
    with sqlite_store.connect() as conn:  # its busy timeout of 0 did not reach the pool
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() > 0


async def test_a_delivering_process_claims_a_run_another_process_committed(
    sqlite_store: Engine, tmp_path: Path
) -> None:
    ran = asyncio.Event()
    registry = TaskRegistry()

    @registry.task("ping")
    async def ping() -> None:
        ran.set()

    config = DispatcherConfig(poll_seconds=60.0, sweep_seconds=60.0)  # only a wake-up runs it
    worker = Tracker(sqlite_store, registry, config=config, watch_store=True)
    # The server: its own engine (another process's connections), accepting only.
    server_engine = make_engine(f"sqlite:///{tmp_path / 'notifyd.db'}")
    server = Tracker(server_engine, registry, config=config, run_dispatcher=False)
    await worker.start()
    await server.start()
    try:
        assert worker.watcher is not None and server.watcher is None
        await worker.dispatcher.passed()  # the first claim, at start, found nothing
        await worker.watcher.looked()
        batch = TaskBatch(server)
        run_id = batch.add_run("ping")
        await batch.commit()
        await asyncio.wait_for(ran.wait(), 10)  # long before the 60 s poll
        await wait_status(sqlite_store, run_id, "succeeded")
    finally:
        await server.stop()
        await worker.stop()
        server_engine.dispose()


def test_only_a_sqlite_file_is_watched(sqlite_store: Engine) -> None:
    assert can_watch(sqlite_store)
    memory = make_engine("sqlite://")
    try:
        assert not can_watch(memory)
        assert not Tracker(memory, TaskRegistry(), watch_store=True).watches
    finally:
        memory.dispose()
    assert not Tracker(sqlite_store, TaskRegistry(), retry=RetryPolicies()).watches
