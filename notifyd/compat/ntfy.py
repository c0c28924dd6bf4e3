"""ntfy's publish API: ``PUT|POST /<topic>``, a JSON ``POST /``, ``GET /<topic>/publish``.

The topic names a destination. Parameters come from headers or query parameters with ntfy's
names and aliases (headers first, as ntfy reads them); the answer is ntfy's message JSON, sent
only once the notification is durable, and errors are ntfy's ``{"code", "http", "error"}``.
Tags, click and markdown have no notifyd field: they travel in ``data``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from notifyd.compat.auth import (
    Caller,
    authenticate,
    token_from_auth_param,
    token_from_authorization,
)
from notifyd.compat.publish import has_destination, publish
from notifyd.config import RESERVED_DESTINATION_NAMES
from notifyd.errors import NotifydError, from_tracking
from notifyd.models import MAX_SCHEDULE, NotificationCreate
from notifyd.runtime import Runtime
from notifyd.timeutil import parse_duration
from notifyd.tracking.errors import TrackingError

router = APIRouter(include_in_schema=False)

PRIORITIES = {
    "1": 1, "min": 1, "2": 2, "low": 2, "": 3, "3": 3, "default": 3,
    "4": 4, "high": 4, "5": 5, "max": 5, "urgent": 5,
}  # fmt: skip
# ntfy's parameter names, in the order it reads them (headers with these names, then queries).
TITLE = ("x-title", "title", "ti", "t")
MESSAGE = ("x-message", "message", "m")
PRIORITY = ("x-priority", "priority", "prio", "p")
TAGS = ("x-tags", "tags", "tag", "ta")
DELAY = ("x-delay", "delay", "x-at", "at", "x-in", "in")
CLICK = ("x-click", "click")
MARKDOWN = ("x-markdown", "markdown", "md")
AUTH_PARAM = "auth"
VERBS = ("publish", "send", "trigger")
DEFAULT_MESSAGE = "triggered"  # ntfy's message for an empty body
LINK_DELAY = "https://ntfy.sh/docs/publish/#scheduled-delivery"
LINK_PRIORITY = "https://ntfy.sh/docs/publish/#message-priority"
LINK_AUTH = "https://ntfy.sh/docs/publish/#authentication"
# A Unix time rather than a number of seconds from now (ntfy reads digits as a Unix time).
UNIX_TIME_FROM = 1_000_000_000


class NtfyError(Exception):
    """An error as ntfy answers it."""

    def __init__(self, code: int, http: int, error: str, link: str = "") -> None:
        super().__init__(error)
        self.code, self.http, self.error, self.link = code, http, error, link
        self.headers: dict[str, str] = {}

    def response(self) -> JSONResponse:
        """``{"code", "http", "error"[, "link"]}`` with the HTTP status ``http``."""
        body: dict[str, Any] = {"code": self.code, "http": self.http, "error": self.error}
        if self.link:
            body["link"] = self.link
        return JSONResponse(body, status_code=self.http, headers=self.headers)


def _translate(exc: NotifydError) -> NtfyError:
    # ntfy's catalogue: 40101 unauthorized, 40301 forbidden, 42901 too many requests, ...
    codes = {
        401: (40101, "unauthorized", LINK_AUTH),
        403: (40301, "forbidden", LINK_AUTH),
        404: (40401, "page not found", ""),
        409: (40900, "conflict", ""),
        429: (42901, "limit reached: too many requests", ""),
    }
    code, prefix, link = codes.get(exc.status, (0, "", ""))
    if not code:
        if 400 <= exc.status < 500:
            code, prefix = 40000, "invalid request"
        else:
            code, prefix = exc.status * 100 + 1, "internal server error"
    status = 400 if exc.status == 422 else exc.status
    error = NtfyError(code, status, f"{prefix}: {exc.detail}", link)
    error.headers = dict(exc.headers)
    if exc.retry_after is not None:
        error.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return error


@dataclass
class Publication:
    """One ntfy publish request, read from wherever ntfy would read it."""

    topic: str
    message: str | None = None
    title: str | None = None
    priority: str | int | None = None
    tags: list[str] = field(default_factory=list)
    delay: str | None = None
    click: str | None = None
    markdown: bool = False


def _decoded(value: str) -> str:
    # ntfy accepts RFC 2047 encoded-words in headers (non-ASCII titles from curl and scripts).
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def _param(request: Request, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = request.headers.get(name)
        if value:
            return _decoded(value)
    for name in names:
        value = request.query_params.get(name)
        if value:
            return value
    return None


def _boolean(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "yes", "true")


def _from_params(request: Request, topic: str) -> Publication:
    tags = _param(request, TAGS)
    markdown = _param(request, MARKDOWN)
    content_type = request.headers.get("content-type", "")
    return Publication(
        topic=topic,
        message=_param(request, MESSAGE),
        title=_param(request, TITLE),
        priority=_param(request, PRIORITY),
        tags=[t.strip() for t in (tags or "").split(",") if t.strip()],
        delay=_param(request, DELAY),
        click=_param(request, CLICK),
        markdown=_boolean(markdown) or content_type.startswith("text/markdown"),
    )


def parse_priority(value: str | int | None) -> int:
    """ntfy's 1-5 or min/low/default/high/max/urgent; 40007 otherwise."""
    if value is None:
        return 3
    found = PRIORITIES.get(str(value).strip().lower())
    if found is None:
        raise NtfyError(40007, 400, "invalid priority parameter", LINK_PRIORITY)
    return found


def parse_when(value: str | None, now: datetime) -> datetime | None:
    """ntfy's delay: a duration (``30m``, ``2h``, ``1d``), a Unix time, or an RFC 3339 time."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    when: datetime | None = None
    if text.isdigit() and int(text) >= UNIX_TIME_FROM:
        when = datetime.fromtimestamp(int(text), UTC)
    else:
        try:
            when = now + (timedelta(seconds=int(text)) if text.isdigit() else parse_duration(text))
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise NtfyError(
                    40004, 400, "invalid delay parameter: unable to parse delay", LINK_DELAY
                ) from None
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if when - now > MAX_SCHEDULE:
        raise NtfyError(
            40006, 400, "invalid delay parameter: too large, at most 30 days", LINK_DELAY
        )
    return when if when > now else None


def _caller_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        return token_from_authorization(header)
    auth = request.query_params.get(AUTH_PARAM)
    return token_from_auth_param(auth) if auth else None


async def _answer(request: Request, publication: Publication) -> JSONResponse:
    """Authenticate, check the topic, submit and answer ntfy's message JSON (or its error)."""
    runtime: Runtime = request.app.state.runtime
    try:
        caller: Caller = await authenticate(request, _caller_token(request))
        if not has_destination(runtime, publication.topic):
            raise NtfyError(40401, 404, f"page not found: no topic {publication.topic!r}")
        priority = parse_priority(publication.priority)
        now = runtime.tracker.clock()
        send_at = parse_when(publication.delay, now)
        data: dict[str, Any] = {}
        if publication.tags:
            data["tags"] = publication.tags
        if publication.click:
            data["click"] = publication.click
        if publication.markdown:
            data["markdown"] = True
        try:
            body = NotificationCreate(
                destination=publication.topic,
                subject=publication.title or None,
                message=publication.message or DEFAULT_MESSAGE,
                priority=priority,
                send_at=send_at,
                data=data or None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise NtfyError(40000, 400, f"invalid request: {where}: {first['msg']}") from None
        submission = await publish(runtime, body, caller)
    except NtfyError as exc:
        return exc.response()
    except NotifydError as exc:
        return _translate(exc).response()
    except TrackingError as exc:
        return _translate(from_tracking(exc)).response()
    when = send_at or now
    message: dict[str, Any] = {
        "id": submission.accepted.id,
        "time": int(when.timestamp()),
        "event": "message",
        "topic": publication.topic,
        "message": body.message,
        "priority": priority,
    }
    if body.subject:
        message["title"] = body.subject
    if publication.tags:
        message["tags"] = publication.tags
    if publication.click:
        message["click"] = publication.click
    return JSONResponse(message, status_code=200)


async def _text_body(request: Request) -> str | None:
    raw = await request.body()
    if not raw:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise NtfyError(
            40011,
            400,
            "invalid message: message must be UTF-8 encoded (attachments are not supported)",
        ) from None


@router.api_route("/{topic}", methods=["PUT", "POST"])
async def publish_topic(topic: str, request: Request) -> JSONResponse:
    """ntfy: the body is the message; the rest from headers or query parameters."""
    if topic.lower() in RESERVED_DESTINATION_NAMES:
        # notifyd's own path with a method it does not take: answer as if ntfy were not here.
        paths = request.app.openapi().get("paths", {})
        methods = sorted(m.upper() for m in paths.get(f"/{topic}", {})) or ["GET", "HEAD"]
        raise HTTPException(405, headers={"Allow": ", ".join(methods)})
    publication = _from_params(request, topic)
    try:
        text = await _text_body(request)
    except NtfyError as exc:
        return exc.response()
    if text is not None:
        publication.message = text
    return await _answer(request, publication)


async def publish_get(topic: str, request: Request) -> JSONResponse:
    """ntfy's GET publishing (``/publish``, ``/send``, ``/trigger``) for tools that only GET."""
    if topic.lower() in RESERVED_DESTINATION_NAMES:
        raise HTTPException(404)  # not ntfy's: notifyd's own 404 (problem+json)
    return await _answer(request, _from_params(request, topic))


# Each verb spelled out: a /{topic}/{verb} pattern would shadow two-segment routes added later.
for _verb in VERBS:
    router.add_api_route(f"/{{topic}}/{_verb}", publish_get, methods=["GET"])


# A GET of /<name> is ntfy's web app or a subscription: not served here, notifyd's own 404 (and
# without this route the POST/PUT catch-all would turn that 404 into a 405).
@router.api_route("/{topic}", methods=["GET", "HEAD"])
async def not_ntfy() -> None:
    """Not found."""
    raise HTTPException(404)


def _json_publication(document: Mapping[str, Any], defaults: Publication) -> Publication:
    def text(name: str) -> str | None:
        value = document.get(name)
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise NtfyError(40017, 400, f"invalid request: {name} must be a string")
        return str(value)

    tags = document.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise NtfyError(40017, 400, "invalid request: tags must be a list of strings")
    markdown = document.get("markdown")
    return Publication(
        topic=str(document.get("topic") or ""),
        message=text("message") if "message" in document else defaults.message,
        title=text("title") or defaults.title,
        priority=text("priority") if document.get("priority") else defaults.priority,
        tags=list(tags) if tags else defaults.tags,
        delay=text("delay") or text("at") or text("in") or defaults.delay,
        click=text("click") or defaults.click,
        markdown=bool(markdown) if markdown is not None else defaults.markdown,
    )


@router.api_route("/", methods=["PUT", "POST"])
async def publish_json(request: Request) -> JSONResponse:
    """ntfy's JSON publishing: ``{"topic", "message", "title", "priority", "tags", ...}``."""
    try:
        raw = await request.body()
        try:
            document = json.loads(raw or b"null")
        except (UnicodeDecodeError, ValueError):
            raise NtfyError(
                40017, 400, "invalid request: request body must be message JSON"
            ) from None
        if not isinstance(document, dict) or not document.get("topic"):
            raise NtfyError(40017, 400, "invalid request: request body must be message JSON")
        publication = _json_publication(document, _from_params(request, ""))
    except NtfyError as exc:
        return exc.response()
    return await _answer(request, publication)


__all__ = ["NtfyError", "parse_priority", "parse_when", "router"]
