"""What the dashboard changes: login and logout, and an admin's retry, retry-now and cancel.

Every POST is a plain form (``application/x-www-form-urlencoded``) from a page of this origin,
carrying the session's CSRF token; writes go through the server's writer like the API's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import RedirectResponse, Response

from notifyd.api.auth import client_host, get_guard
from notifyd.api.deps import ConnDep, RuntimeDep
from notifyd.errors import Forbidden, InvalidInput, NotifydError, from_tracking
from notifyd.runtime import Runtime
from notifyd.tokens import MAX_TOKEN_CHARS, Scope
from notifyd.tracking import admin
from notifyd.tracking.errors import TrackingError
from notifyd.ui.pages import BULK_CANCEL, BULK_RETRY, Filters, VisitDep, finish, login_redirect
from notifyd.ui.render import error_page, page
from notifyd.ui.session import (
    COOKIE,
    Viewer,
    check_csrf,
    clear_cookie,
    current_viewer,
    get_sessions,
    open_mode,
    same_origin,
    set_cookie,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
MAX_FORM_BYTES = 16 * 1024


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the first value of each)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput("expected a form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput("the form is too large")
    fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _local(target: str | None, default: str = "/ui/") -> str:
    """``target`` if it is a dashboard path of this server (no open redirect), else ``default``."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _back(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


@router.get("/login")
async def login_page(request: Request, visit: VisitDep, next: str = "/ui/") -> Response:
    """Ask for a token (straight to the dashboard when already in, or while the API is open)."""
    if visit.viewer is not None:
        return finish(request, visit, _back(_local(next)))
    return page(request, "login.html", None, next=_local(next), message=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check a token and start a session; the token goes nowhere else."""
    if not same_origin(request):
        return error_page(request, None, 403, "log in from the dashboard's own login page")
    try:
        form = await _form(request)
    except InvalidInput as exc:
        return error_page(request, None, 400, exc.detail)
    target = _local(form.get("next"))
    token = form.get("token", "").strip()[: MAX_TOKEN_CHARS + 1]
    guard = get_guard(request)
    try:
        principal = await guard.authenticate(client_host(request), token)
    except NotifydError as exc:
        # The form is shown again with the reason (200: it is the page asked for, not a failed
        # load; a rate limit keeps its status and Retry-After).
        status = exc.status if exc.status == 429 else 200
        response = page(
            request, "login.html", None, status_code=status, next=target, message=exc.detail
        )
        if status == 429:
            response.headers.update(exc.headers)
        return response
    if principal.scope == Scope.send:
        message = "a send token cannot open the dashboard: use a read or admin token"
        return page(request, "login.html", None, next=target, message=message)
    sessions = get_sessions(request)
    sessions.end(request.cookies.get(COOKIE))
    key, _ = sessions.create(principal, None if open_mode(guard) else token)
    redirect = _back(target)
    set_cookie(request, redirect, key)
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (and forget its cookie)."""
    viewer, _ = await current_viewer(request)
    if viewer is not None:
        try:
            check_csrf(request, viewer, (await _form(request)).get("csrf"))
        except NotifydError as exc:
            return error_page(request, viewer, exc.status, exc.detail)
    get_sessions(request).end(request.cookies.get(COOKIE))
    response = _back("/ui/login")
    clear_cookie(response)
    return response


async def _admin_form(request: Request) -> tuple[Viewer | None, dict[str, str] | Response]:
    """The viewer and the form of an admin's POST, or the page refusing it."""
    viewer, _ = await current_viewer(request)
    if viewer is None:
        return None, login_redirect(request)
    try:
        form = await _form(request)
        check_csrf(request, viewer, form.get("csrf"))
        if not viewer.can_act:
            raise Forbidden(
                f"only an admin token can retry or cancel; {viewer.name!r} has {viewer.principal.scope}"
            )
    except NotifydError as exc:
        return viewer, error_page(request, viewer, exc.status, exc.detail)
    return viewer, form


async def _write(runtime: Runtime, operation: Callable[[Connection], Any]) -> Any:
    tracker = runtime.tracker
    try:
        result = await tracker.writer.run(operation)
    except TrackingError as exc:
        raise from_tracking(exc) from None
    tracker.committed()
    return result


@router.post("/runs/{run_id}/{action}")
async def act_on_run(run_id: str, action: str, request: Request, runtime: RuntimeDep) -> Response:
    """Retry (or retry now) or cancel one run, then show it again."""
    viewer, form = await _admin_form(request)
    if isinstance(form, Response):
        return form
    tracker = runtime.tracker
    operations: dict[str, Callable[[Connection], Any]] = {
        "retry": partial(
            admin.retry_run, run_id=run_id, now=tracker.clock(), policies=tracker.retry
        ),
        "cancel": partial(admin.cancel_run, run_id=run_id, now=tracker.clock()),
    }
    if action not in operations:
        return error_page(request, viewer, 404, f"no action {action!r}")
    try:
        await _write(runtime, operations[action])
    except NotifydError as exc:
        return error_page(request, viewer, exc.status, exc.detail)
    return _back(_local(form.get("back"), f"/ui/runs/{run_id}"))


@router.get("/bulk")
def confirm_bulk(
    request: Request,
    visit: VisitDep,
    runtime: RuntimeDep,
    conn: ConnDep,
    action: str = "retry",
    status: str = "",
    channel: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    """How many runs the current filter selects, and a button to act on them all."""
    if visit.viewer is None:
        return login_redirect(request)
    filters = Filters(status, channel, since, until)
    allowed = BULK_RETRY if action == "retry" else BULK_CANCEL if action == "cancel" else ()
    if status not in allowed:
        message = f"bulk {action} needs a status filter: one of {', '.join(allowed) or '-'}"
        return finish(request, visit, error_page(request, visit.viewer, 400, message))
    try:
        count = admin.count_runs(conn, filters.selection(runtime.tracker.clock()))
    except InvalidInput as exc:
        return finish(request, visit, error_page(request, visit.viewer, 400, exc.detail))
    return finish(
        request,
        visit,
        page(request, "bulk.html", visit.viewer, filters=filters, action=action, count=count),
    )


@router.post("/bulk")
async def bulk(request: Request, runtime: RuntimeDep) -> Response:
    """Retry or cancel every run the filter selects (after the confirmation page)."""
    viewer, form = await _admin_form(request)
    if isinstance(form, Response):
        return form
    action = form.get("action", "")
    filters = Filters(*(form.get(name, "") for name in ("status", "channel", "since", "until")))
    tracker = runtime.tracker
    now = tracker.clock()
    try:
        selection = filters.selection(now)
        if action == "retry" and filters.status in BULK_RETRY:
            operation: Callable[[Connection], int] = partial(
                admin.retry_runs, selection=selection, now=now, policies=tracker.retry
            )
        elif action == "cancel" and filters.status in BULK_CANCEL:
            operation = partial(admin.cancel_runs, selection=selection, now=now)
        else:
            raise InvalidInput(f"cannot {action} runs that are {filters.status or 'any status'}")
        done = await _write(runtime, operation)
    except NotifydError as exc:
        return error_page(request, viewer, exc.status, exc.detail)
    return page(request, "bulk_done.html", viewer, filters=filters, action=action, done=done)
