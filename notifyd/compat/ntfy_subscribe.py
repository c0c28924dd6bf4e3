"""ntfy's subscribe API, as its Android app, its CLI, ``curl`` and browsers use it.

``GET /<topics>/json`` (newline-delimited JSON), ``/sse`` (Server-Sent Events), ``/raw`` (one
line per message), ``/ws`` (WebSocket); ``<topics>`` is one topic or several, comma-separated.
The stream opens with an ``open`` event, then the kept messages ``since`` asks for, then each
message as it is published, with a ``keepalive`` event when idle. ``poll=1`` answers the kept
messages and ends. Filters (``id``, ``message``, ``title``, ``priority``, ``tags``) and every
parameter come from headers or the query, with ntfy's names. ``GET /<topics>/auth`` says whether
the credentials may read. Errors are ntfy's ``{"code", "http", "error"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from notifyd.api.auth import client_host
from notifyd.api.params import checks_own_parameters
from notifyd.api.streaming import FeedResponse, pump_websocket, refuse_websocket
from notifyd.compat.auth import Reader, authenticate_reader
from notifyd.compat.ntfy import PRIORITIES, NtfyError, _translate
from notifyd.compat.subscribers import reader_token
from notifyd.config import RESERVED_DESTINATION_NAMES
from notifyd.errors import NotifydError
from notifyd.inbox.broker import Event, SubscriberLimit
from notifyd.inbox.service import Feed, Inbox
from notifyd.inbox.store import TOPIC, Since, StoredMessage, new_message_id, parse_since
from notifyd.runtime import Runtime

router = APIRouter(include_in_schema=False)

MAX_TOPICS = 50
LINK_SINCE = "https://ntfy.sh/docs/subscribe/api/#fetch-cached-messages"
LINK_LIMITS = "https://ntfy.sh/docs/publish/#limitations"
LINK_WS = "https://ntfy.sh/docs/subscribe/api/#websockets"
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
NDJSON = "application/x-ndjson; charset=utf-8"  # ntfy's Android client needs the charset
SSE = "text/event-stream; charset=utf-8"
RAW = "text/plain; charset=utf-8"


# ---- ntfy's JSON ----------------------------------------------------------------------------


def message_json(message: StoredMessage) -> dict[str, Any]:
    """A stored message in ntfy's field names (its omitempty fields left out when empty)."""
    found: dict[str, Any] = {
        "id": message.id,
        "time": int(message.time.timestamp()),
        "expires": int(message.expires.timestamp()),
        "event": "message",
        "topic": message.topic,
    }
    if message.title:
        found["title"] = message.title
    found["message"] = message.message
    found["priority"] = message.priority
    if message.tags:
        found["tags"] = list(message.tags)
    if message.click:
        found["click"] = message.click
    extras = message.extras
    if extras.get("icon"):
        found["icon"] = extras["icon"]
    if extras.get("attachment"):
        found["attachment"] = extras["attachment"]
    if extras.get("markdown"):
        found["content_type"] = "text/markdown"
    return found


def control_json(event: str, topics: str) -> dict[str, Any]:
    """An ``open`` or ``keepalive`` event for ``topics`` (as the path spelled them)."""
    return {"id": new_message_id(), "time": int(time.time()), "event": event, "topic": topics}


def _line(document: dict[str, Any]) -> bytes:
    return (_JSON.encode(document) + "\n").encode()


def _json_message(message: StoredMessage) -> bytes:
    return _line(message_json(message))


def _sse_message(message: StoredMessage) -> bytes:
    return b"data: " + _line(message_json(message)) + b"\n"


def _raw_message(message: StoredMessage) -> bytes:
    return (message.message.replace("\r", " ").replace("\n", " ") + "\n").encode()


@dataclass(frozen=True)
class Dialect:
    """How one of ntfy's stream formats writes messages and control events."""

    name: str
    media_type: str
    message: Callable[[StoredMessage], bytes]
    control: Callable[[str, str], bytes]


DIALECTS = {
    "json": Dialect("json", NDJSON, _json_message, lambda e, t: _line(control_json(e, t))),
    "sse": Dialect(
        "sse",
        SSE,
        _sse_message,
        # Not "message" events, so that a browser's EventSource.onmessage sees messages only.
        lambda e, t: f"event: {e}\n".encode() + b"data: " + _line(control_json(e, t)) + b"\n",
    ),
    "raw": Dialect("raw", RAW, _raw_message, lambda e, t: b"\n"),
}


# ---- parameters -----------------------------------------------------------------------------


def _param(headers: Headers, query: QueryParams, *names: str) -> str | None:
    for name in names:
        if name.startswith("x-") and headers.get(name):
            return headers[name]
    for name in names:
        value = query.get(name)
        if value:
            return value
    return None


def _boolean(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "yes", "true")


@dataclass(frozen=True)
class Filters:
    """ntfy's subscribe filters: every one given must match (tags: all of them)."""

    id: str | None = None
    message: str | None = None
    title: str | None = None
    priorities: frozenset[int] = frozenset()
    tags: frozenset[str] = frozenset()

    def any(self) -> bool:
        """Whether any filter is set."""
        return bool(self.id or self.message or self.title or self.priorities or self.tags)

    def passes(self, message: StoredMessage) -> bool:
        """Whether ``message`` passes every filter."""
        return not (
            (self.id and message.id != self.id)
            or (self.message and message.message != self.message)
            or (self.title and message.title != self.title)
            or (self.priorities and message.priority not in self.priorities)
            or (self.tags and not self.tags.issubset(message.tags))
        )


@dataclass(frozen=True)
class Subscribe:
    """One subscribe request: topics, what to replay, filters."""

    topics: list[str]
    spelled: str
    poll: bool
    since: Since
    scheduled: bool
    filters: Filters


def parse_topics(spelled: str) -> list[str]:
    """``a,b`` as topic names; 40009 for a name that is not one."""
    topics = [name for name in spelled.split(",") if name]
    if not topics or len(topics) > MAX_TOPICS or not all(TOPIC.match(t) for t in topics):
        raise NtfyError(40009, 400, "invalid request: topic invalid")
    return list(dict.fromkeys(topics))


def parse_request(spelled: str, headers: Headers, query: QueryParams, inbox: Inbox) -> Subscribe:
    """Everything a subscribe request says, checked; NtfyError for what ntfy refuses."""
    if spelled.split(",")[0].lower() in RESERVED_DESTINATION_NAMES:
        raise HTTPException(404)  # notifyd's own path, not a topic: notifyd's own 404
    topics = parse_topics(spelled)
    poll = _boolean(_param(headers, query, "x-poll", "poll", "po"))
    scheduled = _boolean(_param(headers, query, "x-scheduled", "scheduled", "sched"))
    since_text = _param(headers, query, "x-since", "since", "si")
    try:
        since = parse_since(since_text, poll=poll, now=inbox.clock())
    except ValueError:
        raise NtfyError(40008, 400, "invalid since parameter", LINK_SINCE) from None
    priorities = set()
    for value in (_param(headers, query, "x-priority", "priority", "prio", "p") or "").split(","):
        if value.strip():
            found = PRIORITIES.get(value.strip().lower())
            if found is None:
                raise NtfyError(40007, 400, "invalid priority parameter")
            priorities.add(found)
    tags = _param(headers, query, "x-tags", "tags", "tag", "ta") or ""
    filters = Filters(
        id=_param(headers, query, "x-id", "id"),
        message=_param(headers, query, "x-message", "message", "m"),
        title=_param(headers, query, "x-title", "title", "t"),
        priorities=frozenset(priorities),
        tags=frozenset(t.strip() for t in tags.split(",") if t.strip()),
    )
    return Subscribe(topics, spelled, poll, since, scheduled, filters)


def render_events(
    dialect: Dialect, filters: Filters | None = None
) -> Callable[[Sequence[Event]], bytes]:
    """A batch of events in ``dialect``, those ``filters`` refuse left out."""
    encode = dialect.message
    if filters is not None and filters.any():
        return lambda events: b"".join(
            e.encode(dialect.name, encode) for e in events if filters.passes(e.message)
        )
    name = dialect.name

    def render(events: Sequence[Event]) -> bytes:
        if len(events) == 1:  # the common case: no copy
            return events[0].encode(name, encode)
        return b"".join([e.encode(name, encode) for e in events])

    return render


async def _reader(request: Request | WebSocket, topics: list[str]) -> Reader:
    reader = await authenticate_reader(request, reader_token(request))
    reader.check_topics(topics)
    return reader


def _limit_error(exc: SubscriberLimit) -> NtfyError:
    return NtfyError(
        42903, 429, f"limit reached: too many active subscriptions: {exc}", LINK_LIMITS
    )


async def _stream(spelled: str, request: Request, dialect: Dialect) -> Response:
    runtime: Runtime = request.app.state.runtime
    inbox = runtime.inbox
    try:
        wanted = parse_request(spelled, request.headers, request.query_params, inbox)
        reader = await _reader(request, wanted.topics)
        if wanted.poll:
            found = await inbox.read(wanted.topics, wanted.since, scheduled=wanted.scheduled)
            events = [Event(message) for message in found]
            return Response(
                render_events(dialect, wanted.filters)(events), media_type=dialect.media_type
            )
        feed = await inbox.open_feed(
            wanted.topics,
            wanted.since,
            address=client_host(request),
            token=reader.name,
            scheduled=wanted.scheduled,
        )
    except NtfyError as exc:
        return exc.response()
    except NotifydError as exc:
        return _translate(exc).response()
    except SubscriberLimit as exc:
        return _limit_error(exc).response()
    return FeedResponse(
        feed,
        render=render_events(dialect, wanted.filters),
        first=dialect.control("open", wanted.spelled),
        keepalive=lambda: dialect.control("keepalive", wanted.spelled),
        keepalive_seconds=inbox.keepalive_seconds,
        media_type=dialect.media_type,
    )


@router.get("/{topics}/json")
@checks_own_parameters
async def subscribe_json(topics: str, request: Request) -> Response:
    """ntfy: newline-delimited JSON."""
    return await _stream(topics, request, DIALECTS["json"])


@router.get("/{topics}/sse")
@checks_own_parameters
async def subscribe_sse(topics: str, request: Request) -> Response:
    """ntfy: Server-Sent Events."""
    return await _stream(topics, request, DIALECTS["sse"])


@router.get("/{topics}/raw")
@checks_own_parameters
async def subscribe_raw(topics: str, request: Request) -> Response:
    """ntfy: one line of text per message, an empty line per keepalive."""
    return await _stream(topics, request, DIALECTS["raw"])


@router.get("/{topics}/auth")
@checks_own_parameters
async def check_auth(topics: str, request: Request) -> JSONResponse:
    """ntfy: whether these credentials may read ``topics`` (its apps ask before subscribing)."""
    try:
        if topics.split(",")[0].lower() in RESERVED_DESTINATION_NAMES:
            raise HTTPException(404)
        await _reader(request, parse_topics(topics))
    except NtfyError as exc:
        return exc.response()
    except NotifydError as exc:
        return _translate(exc).response()
    return JSONResponse({"success": True})


@router.websocket("/{topics}/ws")
async def subscribe_ws(topics: str, websocket: WebSocket) -> None:
    """ntfy: one JSON message per WebSocket frame (uvicorn's pings keep it alive)."""
    runtime: Runtime = websocket.app.state.runtime
    inbox = runtime.inbox
    try:
        wanted = parse_request(topics, websocket.headers, websocket.query_params, inbox)
        reader = await _reader(websocket, wanted.topics)
        feed: Feed | None = None
        if not wanted.poll:
            feed = await inbox.open_feed(
                wanted.topics,
                wanted.since,
                address=client_host(websocket),
                token=reader.name,
                scheduled=wanted.scheduled,
            )
    except HTTPException:
        await _refuse(websocket, NtfyError(40401, 404, "page not found"))
        return
    except NtfyError as exc:
        await _refuse(websocket, exc)
        return
    except NotifydError as exc:
        await _refuse(websocket, _translate(exc))
        return
    except SubscriberLimit as exc:
        await _refuse(websocket, _limit_error(exc))
        return
    await websocket.accept()
    if feed is None:  # a poll: the kept messages, then the end
        try:
            found = await inbox.read(wanted.topics, wanted.since, scheduled=wanted.scheduled)
            for message in found:
                if wanted.filters.passes(message):
                    await websocket.send_text(_json_message(message).decode())
            await websocket.close()
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass  # the client left
        return
    filters = wanted.filters
    await pump_websocket(
        websocket,
        feed,
        frames=lambda batch: [
            e.encode("json", _json_message).decode() for e in batch if filters.passes(e.message)
        ],
        keepalive_seconds=inbox.keepalive_seconds,
        first=_line(control_json("open", wanted.spelled)).decode(),
    )


async def _refuse(websocket: WebSocket, error: NtfyError) -> None:
    await refuse_websocket(websocket, error.response(), error.error)
