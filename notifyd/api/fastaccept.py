"""The accept path at the speed of FastAPI itself: ``POST /v1/notifications`` answered ahead
of every layer of the app.

For every request FastAPI runs its error, telemetry, exit-stack and body-limit layers and
notifyd's own (request id, CORS, body limit), walks the routes, builds a ``Request``, solves the
route's dependencies (auth, the tracked-tasks batch, the runtime, headers, the app-wide
parameter check) and serialises the answer through the response model; on the hot route that
was most of the event loop's time. The app (``NotifydApp``) hands the common request, a JSON
body of declared length within the limit, with no query string and no chunked encoding, to
``AcceptLane`` first, which answers it itself: the request id as
``RequestIdMiddleware`` assigns it, the body validated once from the raw bytes, the same
``Guard`` admitting the caller, the same ``accept``, the answer serialised once, and errors
rendered by the app's own handlers. Anything else (a body that does not validate, another
content type, a query string) goes on to the app with the body replayed, and is answered as it
always was; the route stays declared as before, so the OpenAPI document does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd.api.auth import STATE_KEY, Guard, Principal, token_of
from notifyd.api.bodylimit import BodyTooLarge
from notifyd.api.problems import problem_response
from notifyd.api.requestid import HEADER as REQUEST_ID_HEADER
from notifyd.api.requestid import assign_request_id
from notifyd.errors import Forbidden, NotifydError
from notifyd.models import NotificationAccepted, NotificationCreate
from notifyd.notifications.submit import Submission
from notifyd.runtime import Runtime
from notifyd.tokens import Scope as TokenScope
from notifyd.tracking.errors import TrackingError
from notifyd.tracking.tasks import TaskBatch

PATH = "/v1/notifications"
REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_READ = frozenset(
    {
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"authorization",
        b"idempotency-key",
        REQUEST_ID,
    }
)
SEND = frozenset({TokenScope.send, TokenScope.admin})
# Errors the app's own handlers render (problem+json); anything else is left to the outermost
# handler, exactly as on the declared route.
RENDERED = (NotifydError, TrackingError, OperationalError)
ErrorHandler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


async def accept(
    runtime: Runtime,
    batch: TaskBatch,
    body: NotificationCreate,
    caller: Principal,
    idempotency_key: str | None,
) -> tuple[NotificationAccepted, dict[str, str]]:
    """Submit, count it, and say which headers the 202 carries: the one accept both paths share.

    A token bound to a destination sends to that destination only.
    """
    bound = caller.destination
    if bound is not None and body.destination != bound:
        raise Forbidden(
            f"token {caller.name!r} is bound to destination {bound!r}: send with "
            f'"destination": "{bound}"'
        )
    started = perf_counter()
    submission: Submission = await runtime.submitter.submit(
        batch, body, caller=caller.name, idempotency_key=idempotency_key
    )
    accepted = submission.accepted
    headers = {"Location": f"{PATH}/{accepted.id}"}
    if submission.replayed:
        headers["Idempotency-Replay"] = "true"
    else:
        runtime.metrics.observe_accepted(accepted, seconds=perf_counter() - started)
    return accepted, headers


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the rest of the app once the lane has read the whole body."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class AcceptLane:
    """Answers the common ``POST /v1/notifications`` ahead of the app (see the module)."""

    def __init__(self, fallback: ASGIApp, *, runtime: Runtime, max_body_bytes: int) -> None:
        self.fallback = fallback  # the whole app, every layer included
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def takes(scope: Scope) -> bool:
        """Whether ``scope`` is a request for the lane (its headers are looked at next)."""
        return (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
            and not scope.get("query_string")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The first of each header, as the app's own layers read them (Starlette's get()).
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ and name not in found:
                found[name] = value
        content_type = found.get(b"content-type", b"")
        length = found.get(b"content-length", b"")
        if (
            b"transfer-encoding" in found  # chunked: the body limit counts it as it comes
            or content_type.split(b";", 1)[0].strip().lower() != b"application/json"
            or not length.isdigit()
            or int(length) > self.max_body_bytes
        ):
            await self.fallback(scope, receive, send)
            return
        authorization = found.get(b"authorization")
        token = token_of(authorization.decode("latin-1")) if authorization is not None else None
        key = found.get(b"idempotency-key")
        idempotency_key = key.decode("latin-1") if key is not None else None
        offered_id = found.get(REQUEST_ID, b"").decode("latin-1")
        request_id = assign_request_id(scope, offered_id)
        # uvicorn hands on exactly the declared length, already known to be within the limit;
        # the count is kept anyway, so that a server that did not could not get past it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body: nothing was accepted
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                too_large = problem_response(
                    413, BodyTooLarge(self.max_body_bytes).detail, instance=PATH
                )
                too_large.headers[REQUEST_ID_HEADER] = request_id
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        try:
            body = NotificationCreate.model_validate_json(raw)
        except ValidationError:
            # FastAPI words the 422 as it always has.
            await self.fallback(scope, _replaying(raw, receive), send)
            return
        try:
            guard: Guard = getattr(scope["app"].state, STATE_KEY)
            client = scope["client"][0] if scope.get("client") else "unknown"
            caller = await guard.admit(client, token, SEND)
            batch = TaskBatch(self.runtime.tracker)
            accepted, headers = await accept(self.runtime, batch, body, caller, idempotency_key)
        except Exception as exc:
            # The app's own handler; anything unforeseen as its outermost layer answers it
            # (500, problem+json, the request id to quote) and is raised on for the server.
            handler = self._handler(scope, exc if isinstance(exc, RENDERED) else None)
            problem = await handler(Request(scope), exc)
            problem.headers[REQUEST_ID_HEADER] = request_id
            await problem(scope, _replaying(raw, receive), send)
            if not isinstance(exc, RENDERED):
                raise
            return
        payload = accepted.__pydantic_serializer__.to_json(accepted)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                    *((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()),
                    (REQUEST_ID, request_id.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _handler(scope: Scope, exc: Exception | None) -> ErrorHandler:
        """The app's own handler for ``exc`` (found as Starlette finds it, by the class's MRO),
        or for any exception when ``exc`` is None."""
        handlers: dict[Any, ErrorHandler] = scope["app"].exception_handlers
        for cls in type(exc).__mro__ if exc is not None else (Exception,):
            if cls in handlers:
                return handlers[cls]
        raise LookupError("the app has no handler for this error")
