"""TrackedTasks in any FastAPI app: where BackgroundTasks would go, but durable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Row, select

from notifyd.tracking import DispatcherConfig, TaskRegistry, TrackedTasks, Tracker
from notifyd.tracking.admin import RUNS
from tests.support import wait_for


@pytest.fixture
def app_and_log(store: Engine, tmp_path: Path) -> Iterator[tuple[FastAPI, list[str], Engine]]:
    registry = TaskRegistry()
    done: list[str] = []

    @registry.task("write_report")
    def write_report(user: str, copies: int = 1) -> None:
        done.extend([user] * copies)

    tracker = Tracker(store, registry, config=DispatcherConfig(poll_seconds=0.05))
    app = FastAPI(lifespan=tracker.lifespan)

    @app.post("/reports/{user}")
    async def create(user: str, tasks: TrackedTasks) -> dict[str, str]:
        run_id = tasks.add_task(write_report, user, copies=2)
        return {"run": run_id}

    @app.post("/broken")
    async def broken(tasks: TrackedTasks) -> None:
        tasks.add_task(write_report, "never")
        raise HTTPException(400, "no")

    @app.post("/bad-args")
    async def bad_args(tasks: TrackedTasks) -> None:
        tasks.add_task(write_report, {"not": object()})

    yield app, done, store


def _run(store: Engine, run_id: str) -> Row[Any] | None:
    with store.connect() as conn:
        return conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one_or_none()


def test_add_task_is_durable_before_the_response_and_then_runs(
    app_and_log: tuple[FastAPI, list[str], Engine],
) -> None:
    app, done, store = app_and_log
    with TestClient(app) as client:
        tracker = app.state.notifyd_tracker
        # Hold the dispatcher so the run can be seen queued the moment the response arrives.
        portal = client.portal
        assert portal is not None
        portal.call(tracker.dispatcher.stop)
        response = client.post("/reports/ada")
        assert response.status_code == 200
        run = _run(store, response.json()["run"])
        assert run is not None and run.task_name == "write_report"
        assert run.args == {"user": "ada", "copies": 2}
        portal.call(tracker.dispatcher.start)
        wait_for(lambda: done == ["ada", "ada"], what="the run to execute")
        wait_for(lambda: (r := _run(store, run.id)) is not None and r.status == "succeeded")


def test_a_failed_request_stages_nothing(app_and_log: tuple[FastAPI, list[str], Engine]) -> None:
    app, _done, store = app_and_log
    with TestClient(app) as client:
        assert client.post("/broken").status_code == 400
    with store.connect() as conn:
        assert conn.execute(select(RUNS)).all() == []


def test_arguments_that_are_not_json_are_refused(
    app_and_log: tuple[FastAPI, list[str], Engine],
) -> None:
    app, _done, _store = app_and_log
    with (
        TestClient(app, raise_server_exceptions=True) as client,
        pytest.raises(TypeError, match="JSON"),
    ):
        client.post("/bad-args")
