"""The library's hooks for tracing: a run keeps the context it was made under, and a scope
around each attempt sees it, is current while the task runs (sync tasks too), and can never
stop delivery."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest
from sqlalchemy import Engine

from notifyd.tracking import TaskRegistry
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.execution import AttemptEnd
from notifyd.tracking.outcomes import AttemptResult
from tests.tracking.conftest import TrackerFactory, enqueue, load_run, wait_status

pytestmark = pytest.mark.anyio

CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)


async def test_the_scope_sees_the_runs_context_and_is_current_in_the_task(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    seen_in_tasks: list[str | None] = []
    ended: list[tuple[str | None, str]] = []

    @registry.task("async_task")
    async def async_task() -> None:
        seen_in_tasks.append(CURRENT.get())

    @registry.task("sync_task")
    def sync_task() -> None:
        seen_in_tasks.append(CURRENT.get())  # on the dispatcher's threads

    def scope(run: ClaimedRun) -> AttemptEnd:
        token = CURRENT.set(run.trace_context)

        def end(result: AttemptResult | None) -> None:
            ended.append((run.trace_context, result.status.value if result else "cancelled"))
            CURRENT.reset(token)

        return end

    async with make_tracker() as tracker:
        tracker.trace_context = lambda: "00-trace-span-01"
        tracker.dispatcher.attempt_scope = scope
        first = await enqueue(tracker, async_task)
        second = await enqueue(tracker, sync_task)
        await wait_status(store, first, "succeeded")
        await wait_status(store, second, "succeeded")
    assert load_run(store, first).trace_context == "00-trace-span-01"
    assert seen_in_tasks == ["00-trace-span-01", "00-trace-span-01"]
    assert ended == [("00-trace-span-01", "succeeded")] * 2


@pytest.mark.parametrize("fails", ["open", "close"])
async def test_a_failing_scope_never_stops_delivery(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, fails: str
) -> None:
    @registry.task("ok")
    async def ok() -> dict[str, Any]:
        return {"done": True}

    def scope(run: ClaimedRun) -> AttemptEnd:
        if fails == "open":
            raise RuntimeError("no tracer")

        def end(result: AttemptResult | None) -> None:
            raise RuntimeError("no exporter")

        return end

    async with make_tracker() as tracker:
        tracker.dispatcher.attempt_scope = scope
        run_id = await enqueue(tracker, ok)
        run = await wait_status(store, run_id, "succeeded")
    assert run.trace_context is None  # no context was asked for
