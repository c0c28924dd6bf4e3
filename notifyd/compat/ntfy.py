"""ntfy's publish API: ``PUT|POST /<topic>``, a JSON ``POST /``, ``GET /<topic>/publish``.

The topic names a destination. The parameters are read as ntfy reads them (``ntfy_params``);
the answer is ntfy's message JSON, sent only once the notification is durable, and errors are
ntfy's ``{"code", "http", "error"}``. Tags, click, markdown, icon and attachment links have no
notifyd field: they travel in ``data`` (and an inbox topic's messages carry them to subscribers).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from notifyd.api.bodylimit import BodyTooLarge
from notifyd.compat.auth import (
    Caller,
    authenticate,
    token_from_auth_param,
    token_from_authorization,
)
from notifyd.compat.documents import UnreadableJSON, load_json
from notifyd.compat.ntfy_params import (
    PRIORITIES,
    VERBS,
    NtfyError,
    Publication,
    body_too_large,
    from_json,
    from_params,
    parse_priority,
    parse_when,
    translate,
)
from notifyd.compat.publish import has_destination, message_id, publish
from notifyd.config import RESERVED_DESTINATION_NAMES
from notifyd.errors import NotifydError, from_tracking
from notifyd.models import NotificationCreate
from notifyd.runtime import Runtime
from notifyd.tracking.errors import TrackingError

router = APIRouter(include_in_schema=False)

AUTH_PARAM = "auth"
# The name ntfy_subscribe imports (from before the parameters moved to ntfy_params).
_translate = translate
DEFAULT_MESSAGE = "triggered"  # ntfy's message for an empty body


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
        data.update(publication.links())
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
        return translate(exc).response()
    except TrackingError as exc:
        return translate(from_tracking(exc)).response()
    when = send_at or now
    message: dict[str, Any] = {
        "id": message_id(runtime, submission.accepted.id, publication.topic),
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
    if publication.icon:
        message["icon"] = publication.icon
    if publication.attach:
        name = publication.filename or publication.attach.rsplit("/", 1)[-1]
        message["attachment"] = {"name": name, "url": publication.attach}
    return JSONResponse(message, status_code=200)


async def _text_body(request: Request) -> str | None:
    try:
        raw = await request.body()
    except BodyTooLarge as exc:  # a chunked body, counted as it came
        raise body_too_large(exc.limit) from None
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
    publication = from_params(request, topic)
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
    return await _answer(request, from_params(request, topic))


# Each verb spelled out: a /{topic}/{verb} pattern would shadow two-segment routes added later.
for _verb in VERBS:
    router.add_api_route(f"/{{topic}}/{_verb}", publish_get, methods=["GET"])


# A GET of /<name> is ntfy's web app or a subscription: not served here, notifyd's own 404 (and
# without this route the POST/PUT catch-all would turn that 404 into a 405).
@router.api_route("/{topic}", methods=["GET", "HEAD"])
async def not_ntfy() -> None:
    """Not found."""
    raise HTTPException(404)


@router.api_route("/", methods=["PUT", "POST"])
async def publish_json(request: Request) -> JSONResponse:
    """ntfy's JSON publishing: ``{"topic", "message", "title", "priority", "tags", ...}``."""
    try:
        try:
            raw = await request.body()
        except BodyTooLarge as exc:  # a chunked body, counted as it came
            raise body_too_large(exc.limit, json_body=True) from None
        try:
            document = load_json(raw or b"null")
        except UnreadableJSON:
            raise NtfyError(
                40017, 400, "invalid request: request body must be message JSON"
            ) from None
        if not isinstance(document, dict) or not document.get("topic"):
            raise NtfyError(40017, 400, "invalid request: request body must be message JSON")
        publication = from_json(document, from_params(request, ""))
    except NtfyError as exc:
        return exc.response()
    return await _answer(request, publication)


__all__ = ["PRIORITIES", "NtfyError", "Publication", "parse_priority", "parse_when", "router"]
