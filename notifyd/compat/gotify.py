"""Gotify's ``POST /message``: the token in ``X-Gotify-Key``, ``?token=`` or ``Authorization:
Bearer``; JSON, urlencoded or multipart fields ``message``, ``title``, ``priority`` (0-10),
``extras``. A Gotify client names no destination: the token's bound one is used (``notifyd
tokens create NAME --destination DEST``), or the only destination when just one is configured.
"""

from __future__ import annotations

import hashlib
import math
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from notifyd.api.bodylimit import BodyTooLarge
from notifyd.compat.auth import Caller, authenticate, token_from_authorization
from notifyd.compat.documents import UnreadableJSON, load_json
from notifyd.compat.publish import publish
from notifyd.errors import InvalidInput, NotifydError, from_tracking
from notifyd.models import NotificationCreate
from notifyd.runtime import Runtime
from notifyd.tracking.errors import TrackingError

router = APIRouter(include_in_schema=False)


class GotifyError(Exception):
    """An error as Gotify answers it: ``{"error", "errorCode", "errorDescription"}``."""

    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status, self.description, self.headers = status, description, headers or {}

    def response(self) -> JSONResponse:
        from http import HTTPStatus

        phrase = (
            HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else ""
        )
        body = {"error": phrase, "errorCode": self.status, "errorDescription": self.description}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def body_too_large(limit: int) -> GotifyError:
    """Gotify's 413 for a body over the limit."""
    return GotifyError(413, f"the request body is larger than the limit of {limit} bytes")


def _translate(exc: NotifydError) -> GotifyError:
    headers = dict(exc.headers)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return GotifyError(400 if exc.status == 422 else exc.status, exc.detail, headers)


def gotify_priority(value: Any) -> int | None:
    """The priority a Gotify client sent, as an integer; None when it sent none."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity, 1e999
        raise GotifyError(400, "priority: must be an integer (0-10)") from None
    if number < 0:
        raise GotifyError(400, "priority: must not be negative")
    return number


def map_priority(value: Any) -> int:
    """Gotify's 0-10 (more is allowed) on ntfy's 1-5: 0 min, 1-3 low, 4-7 normal, 8-9 high,
    10 and up urgent. None (not given) is normal."""
    number = gotify_priority(value)
    if number is None:
        return 3
    if number == 0:
        return 1
    if number <= 3:
        return 2
    if number <= 7:
        return 3
    if number <= 9:
        return 4
    return 5


def message_id(notification_id: str) -> int:
    """Gotify's ids are integers (its clients parse them so): a stable number for ours."""
    return int(hashlib.sha256(notification_id.encode()).hexdigest()[:12], 16)


async def _fields(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except BodyTooLarge as exc:  # a chunked body, counted as it came
        raise body_too_large(exc.limit) from None
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json") or (
        not content_type and raw.lstrip().startswith(b"{")
    ):
        try:
            document = load_json(raw)
        except UnreadableJSON as exc:
            raise GotifyError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise GotifyError(400, "the body must be a JSON object")
        return document
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        parsed = BytesParser(policy=HTTP).parsebytes(head + raw)
        fields: dict[str, Any] = {}
        if isinstance(parsed, EmailMessage) and parsed.is_multipart():
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str):
                    payload = part.get_payload(decode=True)
                    if isinstance(payload, bytes):
                        fields[name] = payload.decode(errors="replace")
        return fields
    try:
        return dict(parse_qsl(raw.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise GotifyError(400, "the form is not UTF-8") from None


def _token(request: Request) -> str | None:
    return (
        request.headers.get("x-gotify-key")
        or request.query_params.get("token")
        or token_from_authorization(request.headers.get("authorization"))
    )


def _destination(runtime: Runtime, caller: Caller) -> str:
    if caller.destination is not None:
        return caller.destination
    configured = runtime.destinations.public()
    if len(configured) == 1:
        return configured[0].name
    raise InvalidInput(
        "a Gotify client names no destination: bind its token to one "
        "(`notifyd tokens create NAME --scope send --destination DEST`)"
    )


@router.post("/message")
async def create_message(request: Request) -> JSONResponse:
    """Gotify: create a message; answers Gotify's message JSON once it is stored."""
    runtime: Runtime = request.app.state.runtime
    try:
        caller = await authenticate(request, _token(request))
        fields = await _fields(request)
        message = fields.get("message")
        if not isinstance(message, str) or not message:
            raise GotifyError(400, "message: a non-empty string is required")
        title = fields.get("title")
        if title is not None and not isinstance(title, str):
            raise GotifyError(400, "title: must be a string")
        extras = fields.get("extras")
        if isinstance(extras, str):
            try:
                extras = load_json(extras)
            except UnreadableJSON:
                raise GotifyError(400, "extras: must be a JSON object") from None
        if extras is not None and not isinstance(extras, dict):
            raise GotifyError(400, "extras: must be a JSON object")
        sent_priority = gotify_priority(fields.get("priority"))
        priority = map_priority(sent_priority)
        try:
            body = NotificationCreate(
                destination=_destination(runtime, caller),
                subject=title or None,
                message=message,
                priority=priority,
                data={"extras": extras} if extras else None,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise GotifyError(400, f"{where}: {first['msg']}") from None
        submission = await publish(runtime, body, caller)
    except GotifyError as exc:
        return exc.response()
    except NotifydError as exc:
        return _translate(exc).response()
    except TrackingError as exc:
        return _translate(from_tracking(exc)).response()
    answer = {
        "id": message_id(submission.accepted.id),
        "appid": 0,
        "message": message,
        "title": title or "",
        "priority": sent_priority or 0,
        "extras": extras,
        "date": runtime.tracker.clock().isoformat(),
    }
    if not extras:
        answer.pop("extras")
    return JSONResponse(answer, status_code=200)
