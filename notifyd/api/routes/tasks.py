"""Inspect and steer tracked runs."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from notifyd import control, service
from notifyd.api.auth import AdminAccess, ReadAccess, ReadOwnCaller
from notifyd.api.deps import RuntimeDep, SessionDep
from notifyd.api.params import DateTimeParam
from notifyd.api.problems import problem_responses
from notifyd.db import read_session
from notifyd.models import RunStatus, TaskPage, TaskRunDetail, TaskStats
from notifyd.runtime import Runtime

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", responses=problem_responses(422), dependencies=[ReadAccess])
def list_tasks(
    session: SessionDep,
    status: RunStatus | None = None,
    channel: str | None = None,
    since: DateTimeParam | None = None,
    until: DateTimeParam | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Runs newest first; follow ``next_cursor`` for more."""
    return service.list_runs(
        session=session,
        status=status,
        channel=channel,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/stats", dependencies=[ReadAccess])
def task_stats(runtime: RuntimeDep) -> TaskStats:
    """Counts by status and channel, and the age of the oldest queued run."""
    return service.task_stats(engine=runtime.engine, now=runtime.tracker.clock())


@router.get("/{run_id}", responses=problem_responses(404))
def read_task(run_id: str, caller: ReadOwnCaller, session: SessionDep) -> TaskRunDetail:
    """One run in full, with every attempt (a ``send`` token sees only its own)."""
    return service.get_run(session=session, run_id=run_id, owner=caller.owner)


async def _read(runtime: Runtime, run_id: str) -> TaskRunDetail:
    def read() -> TaskRunDetail:
        with read_session(runtime.engine) as session:
            return service.get_run(session=session, run_id=run_id)

    return await asyncio.to_thread(read)


@router.post("/{run_id}/retry", responses=problem_responses(404, 409), dependencies=[AdminAccess])
async def retry_task(run_id: str, runtime: RuntimeDep) -> TaskRunDetail:
    """Queue a failed or cancelled run again, now, with a fresh retry budget."""
    settings = runtime.settings
    await runtime.tracker.writer.run(
        partial(
            control.retry_run,
            run_id=run_id,
            now=runtime.tracker.clock(),
            max_attempts_for=lambda channel: settings.retry_policy_for(channel).max_attempts,
        )
    )
    runtime.tracker.committed()
    return await _read(runtime, run_id)


@router.post("/{run_id}/cancel", responses=problem_responses(404, 409), dependencies=[AdminAccess])
async def cancel_task(run_id: str, runtime: RuntimeDep) -> TaskRunDetail:
    """Cancel a queued or retrying run: it will not be attempted again."""
    await runtime.tracker.writer.run(
        partial(control.cancel_run, run_id=run_id, now=runtime.tracker.clock())
    )
    return await _read(runtime, run_id)
