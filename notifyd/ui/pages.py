"""The dashboard's pages: overview, runs (filtered, paged), one run, one notification.

Every read goes through the notification views and tracking's admin, as the JSON API's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.responses import RedirectResponse, Response

from notifyd.api.deps import ConnDep, RuntimeDep
from notifyd.errors import InvalidInput, NotFound
from notifyd.models import RunStatus
from notifyd.notifications import views
from notifyd.timeutil import parse_since
from notifyd.tracking import admin
from notifyd.tracking.admin import RunFilter
from notifyd.tracking.models import CANCEL, RETRY, RETRY_NOW
from notifyd.ui.chart import build_chart
from notifyd.ui.render import error_page, page
from notifyd.ui.session import Viewer, current_viewer, set_cookie

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50
REFRESH_SECONDS = 5
BULK_RETRY = tuple(s.value for s in admin.RETRYABLE)
BULK_CANCEL = tuple(s.value for s in CANCEL.sources)


@dataclass(frozen=True)
class Visit:
    """The viewer of a request (None: must log in) and a new session's cookie key, if any."""

    viewer: Viewer | None
    new_key: str | None


async def get_visit(request: Request) -> Visit:
    """Who is looking (``async``: the session check needs no thread)."""
    viewer, key = await current_viewer(request)
    return Visit(viewer, key)


VisitDep = Annotated[Visit, Depends(get_visit)]


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/ui/login?" + urlencode({"next": target}), status_code=303)


def finish(request: Request, visit: Visit, response: Response) -> Response:
    """Set a new open-mode session's cookie on the response."""
    if visit.new_key:
        set_cookie(request, response, visit.new_key)
    return response


@dataclass(frozen=True)
class Filters:
    """The runs page's query string, checked."""

    status: str = ""
    channel: str = ""
    since: str = ""
    until: str = ""
    q: str = ""

    def selection(self, now: datetime) -> RunFilter:
        """The admin filter (the search text aside)."""
        try:
            statuses = (RunStatus(self.status),) if self.status else ()
        except ValueError:
            raise InvalidInput(f"status: unknown status {self.status!r}") from None
        return RunFilter(
            statuses=statuses,
            queue=self.channel or None,
            since=_time(self.since, "since", now),
            until=_time(self.until, "until", now),
        )

    def query(self, **changes: str) -> str:
        """This filter as a query string, with ``changes``; empty values left out."""
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v})


def _time(text: str, name: str, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        return parse_since(text.strip(), now=now)
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}") from None


def _actions(status: RunStatus) -> list[tuple[str, str]]:
    """The (action, label) an admin may take on a run in ``status``."""
    found: list[tuple[str, str]] = []
    if status in RETRY.sources:
        found.append(("retry", "Retry"))
    if status in RETRY_NOW.sources:
        found.append(("retry", "Retry now"))
    if status in CANCEL.sources:
        found.append(("cancel", "Cancel"))
    return found


@router.get("/")
def overview(request: Request, visit: VisitDep, runtime: RuntimeDep, conn: ConnDep) -> Response:
    """Counts, the queue, attempts over the last hour and day, the newest runs and failures."""
    if visit.viewer is None:
        return login_redirect(request)
    now = runtime.tracker.clock()
    stats = views.task_stats(conn, now=now)
    figures = admin.queue_figures(conn, now=now)
    hour = admin.attempt_histogram(
        conn, since=now - timedelta(hours=1), until=now, bucket_seconds=60
    )
    day = admin.attempt_histogram(
        conn, since=now - timedelta(days=1), until=now, bucket_seconds=1800
    )
    return finish(
        request,
        visit,
        page(
            request,
            "overview.html",
            visit.viewer,
            stats=stats,
            statuses=[s.value for s in RunStatus],
            active=figures.active,
            due=admin.count_due(conn, now=now),
            oldest_due_at=figures.oldest_due_at,
            charts=[build_chart("Last hour", hour), build_chart("Last day", day)],
            newest=views.list_runs(conn, limit=10).items,
            failures=views.list_runs(conn, status=RunStatus.failed, limit=10).items,
            clock=now,
            refresh=REFRESH_SECONDS,
        ),
    )


def _runs_page(
    conn: Connection, filters: Filters, now: datetime, cursor: str | None
) -> dict[str, Any]:
    selection = filters.selection(now)
    if filters.q:
        found = admin.search_runs(
            conn, selection, text=filters.q.strip(), limit=PAGE_SIZE, cursor=cursor
        )
    else:
        found = admin.list_runs(conn, selection, limit=PAGE_SIZE, cursor=cursor)
    return {
        "runs": [views.run_public(run) for run in found.items],
        "next_cursor": found.next_cursor,
    }


@router.get("/runs")
def runs(
    request: Request,
    visit: VisitDep,
    runtime: RuntimeDep,
    conn: ConnDep,
    status: str = "",
    channel: str = "",
    since: str = "",
    until: str = "",
    q: str = "",
    cursor: str | None = None,
) -> Response:
    """Runs newest first, filtered by the query string, a page at a time."""
    if visit.viewer is None:
        return login_redirect(request)
    filters = Filters(status, channel, since, until, q)
    now = runtime.tracker.clock()
    try:
        found = _runs_page(conn, filters, now, cursor)
    except InvalidInput as exc:
        return finish(request, visit, error_page(request, visit.viewer, 400, exc.detail))
    return finish(
        request,
        visit,
        page(
            request,
            "runs.html",
            visit.viewer,
            filters=filters,
            statuses=[s.value for s in RunStatus],
            channels=sorted(runtime.channels),
            cursor=cursor,
            bulk_retry=filters.status in BULK_RETRY and not filters.q,
            bulk_cancel=filters.status in BULK_CANCEL and not filters.q,
            clock=now,
            refresh=REFRESH_SECONDS,
            **found,
        ),
    )


@router.get("/runs/{run_id}")
def run_detail(
    run_id: str, request: Request, visit: VisitDep, runtime: RuntimeDep, conn: ConnDep
) -> Response:
    """One run, its notification, and its attempts."""
    if visit.viewer is None:
        return login_redirect(request)
    try:
        run = views.get_run(conn, run_id=run_id)
        note = (
            views.get_notification(conn, notification_id=run.notification_id)
            if run.notification_id
            else None
        )
    except NotFound as exc:
        return finish(request, visit, error_page(request, visit.viewer, 404, exc.detail))
    return finish(
        request,
        visit,
        page(
            request,
            "run.html",
            visit.viewer,
            run=run,
            note=note,
            actions=_actions(run.status),
            clock=runtime.tracker.clock(),
            refresh=REFRESH_SECONDS,
        ),
    )


@router.get("/notifications/{notification_id}")
def notification_detail(
    notification_id: str, request: Request, visit: VisitDep, runtime: RuntimeDep, conn: ConnDep
) -> Response:
    """A notification and all its runs."""
    if visit.viewer is None:
        return login_redirect(request)
    try:
        note = views.get_notification(conn, notification_id=notification_id)
    except NotFound as exc:
        return finish(request, visit, error_page(request, visit.viewer, 404, exc.detail))
    runs = [views.run_public(run) for run in admin.runs_for_ref(conn, notification_id)]
    return finish(
        request,
        visit,
        page(
            request,
            "notification.html",
            visit.viewer,
            note=note,
            runs=runs,
            clock=runtime.tracker.clock(),
            refresh=REFRESH_SECONDS,
        ),
    )
