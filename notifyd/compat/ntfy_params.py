"""ntfy's language for one publication: its parameter names and aliases, its priorities and
delays, and its errors ``{"code", "http", "error"[, "link"]}``.

Parameters come from headers or query parameters with ntfy's names (headers first, as ntfy reads
them), or from the fields of a JSON publication. Everything a client sends is parsed here, and
anything unparsable is an ``NtfyError`` the route answers as it is; nothing escapes as a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.errors import MessageError
from email.header import decode_header, make_header
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from notifyd.errors import NotifydError
from notifyd.models import MAX_SCHEDULE
from notifyd.timeutil import parse_duration

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
ICON = ("x-icon", "icon")
ATTACH = ("x-attach", "attach", "a")  # a link: attachments themselves are not uploaded here
FILENAME = ("x-filename", "filename", "file", "f")
MARKDOWN = ("x-markdown", "markdown", "md")
VERBS = ("publish", "send", "trigger")  # GET /<topic>/<verb> publishes
LINK_DELAY = "https://ntfy.sh/docs/publish/#scheduled-delivery"
LINK_PRIORITY = "https://ntfy.sh/docs/publish/#message-priority"
LINK_AUTH = "https://ntfy.sh/docs/publish/#authentication"
# A Unix time rather than a number of seconds from now (ntfy reads digits as a Unix time).
UNIX_TIME_FROM = 1_000_000_000
# Longer than any delay ntfy reads (an RFC 3339 time with fractions and an offset is 35).
MAX_DELAY_CHARS = 64
# More digits than any Unix time within 30 days: refused as too far before int() sees them.
MAX_DELAY_DIGITS = 12


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


def body_too_large(limit: int, *, json_body: bool = False) -> NtfyError:
    """ntfy's 413: 41303 for a JSON publication, 41301 for a message body."""
    if json_body:
        return NtfyError(41303, 413, f"JSON body too large: at most {limit} bytes")
    return NtfyError(41301, 413, f"message too large: at most {limit} bytes")


def translate(exc: NotifydError) -> NtfyError:
    """notifyd's error in ntfy's catalogue: 40101 unauthorized, 40301 forbidden, 42901, ..."""
    codes = {
        401: (40101, "unauthorized", LINK_AUTH),
        403: (40301, "forbidden", LINK_AUTH),
        404: (40401, "page not found", ""),
        409: (40900, "conflict", ""),
        413: (41301, "limit reached: request entity too large", ""),
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
    icon: str | None = None
    attach: str | None = None
    filename: str | None = None

    def links(self) -> dict[str, str]:
        """The icon, attachment link and file name, for the notification's ``data``."""
        found = {"icon": self.icon, "attach": self.attach, "filename": self.filename}
        return {name: value for name, value in found.items() if value}


def _decoded(value: str) -> str:
    # ntfy accepts RFC 2047 encoded-words in headers (non-ASCII titles from curl and scripts).
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError, MessageError):
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


def from_params(request: Request, topic: str) -> Publication:
    """A publication to ``topic`` from the request's headers and query parameters."""
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
        icon=_param(request, ICON),
        attach=_param(request, ATTACH),
        filename=_param(request, FILENAME),
    )


def from_json(document: Mapping[str, Any], defaults: Publication) -> Publication:
    """A publication from ntfy's JSON fields, the request's parameters filling the gaps."""

    def text(name: str) -> str | None:
        value = document.get(name)
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise NtfyError(40017, 400, f"invalid request: {name} must be a string")
        try:
            return str(value)
        except ValueError:  # an integer of more digits than Python converts
            raise NtfyError(40017, 400, f"invalid request: {name} is too long") from None

    tags = document.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise NtfyError(40017, 400, "invalid request: tags must be a list of strings")
    topic = document.get("topic")
    if not isinstance(topic, str) or not topic:
        raise NtfyError(40017, 400, "invalid request: topic must be a non-empty string")
    markdown = document.get("markdown")
    return Publication(
        topic=topic,
        message=text("message") if "message" in document else defaults.message,
        title=text("title") or defaults.title,
        priority=text("priority") if document.get("priority") else defaults.priority,
        tags=list(tags) if tags else defaults.tags,
        delay=text("delay") or text("at") or text("in") or defaults.delay,
        click=text("click") or defaults.click,
        markdown=bool(markdown) if markdown is not None else defaults.markdown,
        icon=text("icon") or defaults.icon,
        attach=text("attach") or defaults.attach,
        filename=text("filename") or defaults.filename,
    )


def parse_priority(value: str | int | None) -> int:
    """ntfy's 1-5 or min/low/default/high/max/urgent; 40007 otherwise."""
    if value is None:
        return 3
    found = PRIORITIES.get(str(value).strip().lower())
    if found is None:
        raise NtfyError(40007, 400, "invalid priority parameter", LINK_PRIORITY)
    return found


def _unparsable() -> NtfyError:
    return NtfyError(40004, 400, "invalid delay parameter: unable to parse delay", LINK_DELAY)


def _too_far() -> NtfyError:
    return NtfyError(40006, 400, "invalid delay parameter: too large, at most 30 days", LINK_DELAY)


def _when(text: str, now: datetime) -> datetime:
    # ASCII digits only: isdigit() is also true of superscripts (which int() refuses) and of
    # Arabic-Indic or fullwidth digits (which int() reads); ntfy reads none of them.
    if text.isascii() and text.isdigit():
        if len(text) > MAX_DELAY_DIGITS:
            raise _too_far()
        number = int(text)
        if number >= UNIX_TIME_FROM:
            return datetime.fromtimestamp(number, UTC)
        return now + timedelta(seconds=number)
    try:
        duration = parse_duration(text)
    except ValueError:
        pass
    else:
        if duration > MAX_SCHEDULE:
            raise _too_far()
        return now + duration
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _unparsable() from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_when(value: str | None, now: datetime) -> datetime | None:
    """ntfy's delay: a duration (``30m``, ``2h``, ``1d``), a Unix time, or an RFC 3339 time;
    40004 when it is none of them, 40006 when it is more than 30 days ahead."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > MAX_DELAY_CHARS:
        raise _too_far() if text.isascii() and text.isdigit() else _unparsable()
    try:
        when = _when(text, now)
        ahead = when - now
    except (OverflowError, OSError, ValueError):  # a time datetime cannot hold
        raise _too_far() from None
    if ahead > MAX_SCHEDULE:
        raise _too_far()
    return when if when > now else None
