"""The web inbox: a topic's messages in the browser, live over Server-Sent Events.

``/ui/inbox`` lists the topics the viewer may read; ``/ui/inbox/<topic>`` shows the kept
messages and follows new ones (``/ui/inbox/<topic>/events``, ntfy's SSE dialect, with the
dashboard's session cookie), with browser notifications once the user allows them. Same login,
same CSP as the rest of the dashboard; every message reaches the page as text, never as markup.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from notifyd.api.auth import client_host
from notifyd.api.deps import RuntimeDep
from notifyd.api.streaming import FeedResponse
from notifyd.compat.auth import Reader, reader_for
from notifyd.compat.ntfy_subscribe import DIALECTS, render_events
from notifyd.errors import NotFound, NotifydError
from notifyd.inbox.broker import SubscriberLimit
from notifyd.inbox.store import EVERYTHING, MESSAGE_ID, NOTHING, TOPIC, Since, SinceKind
from notifyd.runtime import Runtime
from notifyd.ui.pages import VisitDep, finish, login_redirect
from notifyd.ui.render import error_page, page

router = APIRouter(prefix="/ui/inbox", include_in_schema=False)
SHOWN = 100


def _reader(runtime: Runtime, visit: VisitDep) -> Reader:
    assert visit.viewer is not None
    return reader_for(visit.viewer.principal, runtime)


@router.get("")
async def topics(request: Request, visit: VisitDep, runtime: RuntimeDep) -> Response:
    """The topics this viewer may read."""
    if visit.viewer is None:
        return login_redirect(request)
    try:
        reader = _reader(runtime, visit)
    except NotifydError as exc:
        return finish(request, visit, error_page(request, visit.viewer, exc.status, exc.detail))
    if reader.topics is not None:
        names = sorted(reader.topics)
    else:
        configured = {t for d in runtime.destinations.all() for t in d.topics}
        names = sorted(configured | set(await runtime.inbox.topics()))
    return finish(request, visit, page(request, "inbox_topics.html", visit.viewer, topics=names))


@router.get("/{topic}")
async def inbox(topic: str, request: Request, visit: VisitDep, runtime: RuntimeDep) -> Response:
    """A topic's newest messages; the page follows new ones by itself."""
    if visit.viewer is None:
        return login_redirect(request)
    try:
        if not TOPIC.match(topic):
            raise NotFound("no such topic: a topic is 1 to 64 letters, digits, '-' or '_'")
        _reader(runtime, visit).check_topics([topic])
    except NotifydError as exc:
        return finish(request, visit, error_page(request, visit.viewer, exc.status, exc.detail))
    messages = await runtime.inbox.page([topic], limit=SHOWN)
    return finish(
        request,
        visit,
        page(
            request,
            "inbox.html",
            visit.viewer,
            topic=topic,
            messages=messages,
            last=messages[0].id if messages else "",
        ),
    )


@router.get("/{topic}/events")
async def events(topic: str, request: Request, visit: VisitDep, runtime: RuntimeDep) -> Response:
    """The topic's new messages as Server-Sent Events (after ``since``, a message id)."""
    if visit.viewer is None:
        return Response(status_code=401)
    try:
        if not TOPIC.match(topic):
            raise NotFound("no such topic: a topic is 1 to 64 letters, digits, '-' or '_'")
        reader = _reader(runtime, visit)
        reader.check_topics([topic])
        since_id = request.query_params.get("since", "")
        since: Since = NOTHING
        if MESSAGE_ID.match(since_id):
            since = Since(SinceKind.id, message_id=since_id)
        elif since_id == "all":
            since = EVERYTHING
        feed = await runtime.inbox.open_feed(
            [topic], since, address=client_host(request), token=reader.name
        )
    except NotifydError as exc:
        return Response(exc.detail, status_code=exc.status, media_type="text/plain")
    except SubscriberLimit as exc:
        return Response(str(exc), status_code=429, media_type="text/plain")
    sse = DIALECTS["sse"]
    return FeedResponse(
        feed,
        render=render_events(sse),
        first=sse.control("open", topic),
        keepalive=lambda: sse.control("keepalive", topic),
        keepalive_seconds=runtime.inbox.keepalive_seconds,
        media_type=sse.media_type,
    )
