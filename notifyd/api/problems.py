"""Every error answer is application/problem+json (RFC 9457): type, title, status, detail."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifyd.api.requestid import HEADER as REQUEST_ID_HEADER
from notifyd.api.requestid import new_request_id
from notifyd.errors import PROBLEM_BASE, NotifydError, StoreUnavailable, from_tracking
from notifyd.tracking.errors import TrackingError

log = logging.getLogger(__name__)
PROBLEM_MEDIA_TYPE = "application/problem+json"
STORE_RETRY_AFTER = 2.0


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """Build a problem+json response."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = Problem(
        type=PROBLEM_BASE + (slug or phrase.lower().replace(" ", "-")),
        title=title or phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _message(msg: str) -> str:
    # pydantic prefixes a validator's own message with "Value error, ": not the client's concern.
    return msg.removeprefix("Value error, ")


async def _tracking_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrackingError)
    return await _notifyd_error(request, from_tracking(exc))


async def _notifyd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotifydError)
    headers = dict(exc.headers)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status >= 500:
        log.error("request failed: %s", exc.detail)
    return problem_response(
        exc.status,
        exc.detail,
        slug=exc.slug,
        title=exc.title,
        headers=headers or None,
        instance=request.url.path,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(err.get("loc", ())), "message": _message(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem_response(
        422,
        detail,
        slug="invalid-input",
        title="Invalid input",
        errors=errors,
        instance=request.url.path,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    return problem_response(
        exc.status_code,
        detail,
        headers=dict(exc.headers or {}) or None,
        instance=request.url.path,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    log.exception(
        "unexpected error (request id %s) on %s %s", request_id, request.method, request.url.path
    )
    return problem_response(
        500,
        f"an unexpected error occurred; quote request id {request_id} when reporting it",
        instance=request.url.path,
        # Sent from outside every middleware, so the request id middleware cannot add it.
        headers={REQUEST_ID_HEADER: request_id},
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The database is down, restarting or unreachable: nothing was changed, so a retry is safe.
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    error = StoreUnavailable(
        "the database is unavailable and the request was not completed; retry it "
        "(with an Idempotency-Key, a retry cannot send twice)",
        retry_after=STORE_RETRY_AFTER,
    )
    return await _notifyd_error(request, error)


def install_problem_handlers(app: FastAPI) -> None:
    """Turn every error into problem+json."""
    app.add_exception_handler(NotifydError, _notifyd_error)
    app.add_exception_handler(TrackingError, _tracking_error)
    app.add_exception_handler(OperationalError, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }
