"""Gotify's client API, as its Android app and the ``gotify`` Python client read messages.

- ``GET /message`` (``limit`` 1-200, default 100; ``since``: messages with an id below it) in
  Gotify's paging shape, and ``GET /application/{id}/message`` for one application;
- ``DELETE /message/{id}``, ``DELETE /message`` (all the client may read),
  ``DELETE /application/{id}/message``;
- ``GET /stream``: a WebSocket, one message per frame, as they are published;
- ``GET /application``: an application per inbox topic the client may read;
- its app's login: ``GET /version``, ``POST /client`` (Basic, the password a notifyd read token,
  which is also the client token answered), ``GET /current/user``, ``DELETE /client/{id}``.

An inbox topic is a Gotify application (its id a stable number from the topic's name); a
message's id is its inbox ``seq``. The client token is a notifyd token with scope read or admin
(a token bound to a destination reads that destination's topics), in ``X-Gotify-Key``,
``?token=`` or ``Authorization``. Errors are Gotify's ``{"error", "errorCode",
"errorDescription"}``.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.responses import Response

from notifyd import __version__
from notifyd.api.auth import client_host
from notifyd.api.params import checks_own_parameters
from notifyd.api.streaming import pump_websocket, refuse_websocket
from notifyd.compat.auth import Reader, authenticate_reader
from notifyd.compat.gotify import GotifyError, _translate
from notifyd.compat.subscribers import reader_token
from notifyd.errors import NotifydError
from notifyd.inbox.broker import SubscriberLimit
from notifyd.inbox.store import NOTHING, StoredMessage
from notifyd.runtime import Runtime

router = APIRouter(include_in_schema=False)

GOTIFY_VERSION = "2.6.0"  # the Gotify server whose client API this answers like
DEFAULT_LIMIT = 100
MAX_LIMIT = 200
_TO_GOTIFY = {1: 0, 2: 2, 3: 5, 4: 8, 5: 10}  # ntfy's 1-5 on Gotify's 0-10


def application_id(topic: str) -> int:
    """A topic's Gotify application id: a stable positive number from its name."""
    return (zlib.crc32(topic.encode()) & 0x7FFFFFFF) or 1


def message_json(message: StoredMessage) -> dict[str, Any]:
    """A stored message in Gotify's shape."""
    extras: dict[str, Any] = {}
    if message.click:
        extras["client::notification"] = {"click": {"url": message.click}}
    if message.extras.get("markdown"):
        extras["client::display"] = {"contentType": "text/markdown"}
    found: dict[str, Any] = {
        "id": message.seq,
        "appid": application_id(message.topic),
        "message": message.message,
        "title": message.title or message.topic,
        "priority": _TO_GOTIFY.get(message.priority, 5),
        "date": message.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if extras:
        found["extras"] = extras
    return found


async def _reader(connection: HTTPConnection) -> Reader:
    return await authenticate_reader(connection, reader_token(connection))


async def _topics(runtime: Runtime, reader: Reader) -> list[str]:
    """The topics ``reader`` may read: its own, or every configured and every kept one."""
    if reader.topics is not None:
        return sorted(reader.topics)
    configured = {t for d in runtime.destinations.all() for t in d.topics}
    return sorted(configured | set(await runtime.inbox.topics()))


def _paging(request: Request) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise GotifyError(400, f"Field validation for '{name.title()}' failed: not a number")
        return int(raw)

    limit = number("limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise GotifyError(400, f"Field validation for 'Limit' failed: 1 to {MAX_LIMIT}")
    return limit, number("since", 0)


async def _page(request: Request, topics: list[str] | None) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    limit, since = _paging(request)
    found = await runtime.inbox.page(topics, limit=limit + 1, before=since)
    shown = found[:limit]
    paging: dict[str, Any] = {"size": len(shown), "limit": limit, "since": 0}
    if len(found) > limit:
        paging["since"] = shown[-1].seq
        paging["next"] = f"{request.url.path}?limit={limit}&since={shown[-1].seq}"
    return JSONResponse({"paging": paging, "messages": [message_json(m) for m in shown]})


Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


def gotify_route(endpoint: Endpoint) -> Endpoint:
    """An endpoint whose errors are answered in Gotify's shape, and which checks its own
    parameters (so that they get that shape too)."""

    @functools.wraps(endpoint)
    async def answered(*args: Any, **kwargs: Any) -> Response:
        try:
            return await endpoint(*args, **kwargs)
        except GotifyError as exc:
            return exc.response()
        except NotifydError as exc:
            return _translate(exc).response()

    return checks_own_parameters(cast(Endpoint, answered))


def _readable(reader: Reader) -> list[str] | None:
    return sorted(reader.topics) if reader.topics is not None else None


@router.get("/message")
@gotify_route
async def get_messages(request: Request) -> Response:
    """Gotify: the newest messages the client may read, paged backwards by id."""
    return await _page(request, _readable(await _reader(request)))


@router.get("/application/{app_id}/message")
@gotify_route
async def get_application_messages(app_id: str, request: Request) -> Response:
    """Gotify: the messages of one application (one inbox topic)."""
    runtime: Runtime = request.app.state.runtime
    topic = await _application_topic(runtime, await _reader(request), app_id)
    return await _page(request, [topic])


@router.delete("/application/{app_id}/message")
@gotify_route
async def delete_application_messages(app_id: str, request: Request) -> Response:
    """Gotify: delete every message of one application (one inbox topic)."""
    runtime: Runtime = request.app.state.runtime
    topic = await _application_topic(runtime, await _reader(request), app_id)
    await runtime.inbox.clear([topic])
    return Response(status_code=200)


async def _application_topic(runtime: Runtime, reader: Reader, app_id: str) -> str:
    for topic in await _topics(runtime, reader):
        if str(application_id(topic)) == app_id:
            return topic
    raise GotifyError(404, "application does not exist")


@router.get("/application")
@gotify_route
async def get_applications(request: Request) -> Response:
    """Gotify: an application per inbox topic the client may read."""
    runtime: Runtime = request.app.state.runtime
    topics = await _topics(runtime, await _reader(request))
    return JSONResponse(
        [
            {
                "id": application_id(topic),
                "token": "",  # publishing takes a notifyd token, never shown here
                "name": topic,
                "description": f"notifyd inbox topic {topic}",
                "internal": False,
                "image": "static/defaultapp.png",
                "defaultPriority": 5,
                "lastUsed": None,
            }
            for topic in topics
        ]
    )


@router.delete("/message/{message_id}")
@gotify_route
async def delete_message(message_id: str, request: Request) -> Response:
    """Gotify: delete one message."""
    runtime: Runtime = request.app.state.runtime
    reader = await _reader(request)
    if not (message_id.isascii() and message_id.isdigit()) or len(message_id) > 18:
        raise GotifyError(400, "strconv.ParseUint: parsing: invalid syntax")
    if not await runtime.inbox.delete(int(message_id), _readable(reader)):
        raise GotifyError(404, f"message with id {message_id} doesn't exists")
    return Response(status_code=200)


@router.delete("/message")
@gotify_route
async def delete_messages(request: Request) -> Response:
    """Gotify: delete every message the client may read."""
    runtime: Runtime = request.app.state.runtime
    await runtime.inbox.clear(await _topics(runtime, await _reader(request)))
    return Response(status_code=200)


@router.get("/version")
async def version() -> JSONResponse:
    """Gotify: which server this is (its apps ask before logging in)."""
    return JSONResponse(
        {"version": GOTIFY_VERSION, "commit": f"notifyd {__version__}", "buildDate": ""}
    )


@router.post("/client")
@gotify_route
async def create_client(request: Request) -> Response:
    """Gotify's login: its app sends a user name and password (Basic) and keeps the client token
    it gets back. Here the password is a notifyd read token, and that token is the answer:
    notifyd makes no tokens on its own (``notifyd tokens create NAME --scope read`` does)."""
    reader = await _reader(request)
    try:
        body = await request.json()
    except ValueError:
        body = {}
    name = body.get("name") if isinstance(body, dict) else None
    return JSONResponse(
        {
            "id": application_id(reader.name or "open"),
            "token": reader_token(request) or "",
            "name": str(name or reader.name or "notifyd")[:100],
            "lastUsed": None,
        }
    )


@router.delete("/client/{client_id}")
@gotify_route
async def delete_client(client_id: str, request: Request) -> Response:
    """Gotify's logout: nothing to delete here (revoke the token with ``notifyd tokens revoke``)."""
    await _reader(request)
    return Response(status_code=200)


@router.get("/current/user")
@gotify_route
async def current_user(request: Request) -> Response:
    """Gotify: who the client token belongs to."""
    name = (await _reader(request)).name or "notifyd"
    return JSONResponse({"id": application_id(name), "name": name, "admin": False})


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """Gotify: each new message the client may read, one JSON object per frame."""
    runtime: Runtime = websocket.app.state.runtime
    inbox = runtime.inbox
    try:
        reader = await _reader(websocket)
        feed = await inbox.open_feed(
            _readable(reader), NOTHING, address=client_host(websocket), token=reader.name
        )
    except NotifydError as exc:
        await _refuse(websocket, _translate(exc))
        return
    except SubscriberLimit as exc:
        await _refuse(websocket, GotifyError(429, str(exc)))
        return
    await websocket.accept()
    await pump_websocket(
        websocket,
        feed,
        frames=lambda batch: [e.encode("gotify", _gotify_frame).decode() for e in batch],
        keepalive_seconds=inbox.keepalive_seconds,
    )


def _gotify_frame(message: StoredMessage) -> bytes:
    import json

    return json.dumps(message_json(message), ensure_ascii=False).encode()


async def _refuse(websocket: WebSocket, error: GotifyError) -> None:
    await refuse_websocket(websocket, error.response(), error.description)
