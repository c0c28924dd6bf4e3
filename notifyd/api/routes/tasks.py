"""Inspect tracked runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from notifyd import service
from notifyd.api.deps import SessionDep
from notifyd.api.problems import problem_responses
from notifyd.models import RunStatus, TaskPage, TaskRunDetail

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", responses=problem_responses(422))
def list_tasks(
    session: SessionDep,
    status: RunStatus | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
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


@router.get("/{run_id}", responses=problem_responses(404))
def read_task(run_id: str, session: SessionDep) -> TaskRunDetail:
    """One run in full, with every attempt."""
    return service.get_run(session=session, run_id=run_id)
