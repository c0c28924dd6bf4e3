"""Inspect and steer tracked runs."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from notifyd.api.auth import AdminAccess, ReadAccess, ReadOwnCaller
from notifyd.api.deps import ConnDep, RuntimeDep
from notifyd.api.params import DateTimeParam
from notifyd.api.problems import problem_responses
from notifyd.models import RunStatus, TaskPage, TaskRunDetail, TaskStats
from notifyd.notifications import views
from notifyd.runtime import Runtime
from notifyd.tracking import admin

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", responses=problem_responses(422), dependencies=[ReadAccess])
def list_tasks(
    conn: ConnDep,
    status: RunStatus | None = None,
    channel: str | None = None,
    since: DateTimeParam | None = None,
    until: DateTimeParam | None = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Runs newest first; follow ``next_cursor`` for more."""
    return views.list_runs(
        conn,
        status=status,
        channel=channel,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/stats", dependencies=[ReadAccess])
def task_stats(runtime: RuntimeDep, conn: ConnDep) -> TaskStats:
    """Counts by status and channel, and the age of the oldest queued run."""
    return views.task_stats(conn, now=runtime.tracker.clock())


@router.get("/{run_id}", responses=problem_responses(404))
def read_task(run_id: str, caller: ReadOwnCaller, conn: ConnDep) -> TaskRunDetail:
    """One run in full, with every attempt (a ``send`` token sees only its own)."""
    return views.get_run(conn, run_id=run_id, owner=caller.owner)


async def _read(runtime: Runtime, run_id: str) -> TaskRunDetail:
    def read() -> TaskRunDetail:
        with runtime.engine.connect() as conn:
            return views.get_run(conn, run_id=run_id)

    return await asyncio.to_thread(read)


@router.post("/{run_id}/retry", responses=problem_responses(404, 409), dependencies=[AdminAccess])
async def retry_task(run_id: str, runtime: RuntimeDep) -> TaskRunDetail:
    """Run a run again now: a failed or cancelled one with a fresh retry budget, a retrying one
    at once instead of at its scheduled time (the wait is not charged as an attempt)."""
    tracker = runtime.tracker
    await tracker.writer.run(
        partial(admin.retry_run, run_id=run_id, now=tracker.clock(), policies=tracker.retry)
    )
    tracker.committed()
    return await _read(runtime, run_id)


@router.post("/{run_id}/cancel", responses=problem_responses(404, 409), dependencies=[AdminAccess])
async def cancel_task(run_id: str, runtime: RuntimeDep) -> TaskRunDetail:
    """Cancel a queued or retrying run: it will not be attempted again."""
    await runtime.tracker.writer.run(
        partial(admin.cancel_run, run_id=run_id, now=runtime.tracker.clock())
    )
    return await _read(runtime, run_id)
