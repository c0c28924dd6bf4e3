"""The accept path at the speed of FastAPI itself: ``POST /v1/notifications`` answered before
the framework's own layers.

For every request FastAPI runs its exception, exit-stack and body-limit layers, walks the
routes, builds a ``Request``, solves the route's dependencies (auth, the tracked-tasks batch,
the runtime, headers, the app-wide parameter check) and serialises the answer through the
response model; on the hot route that was most of the event loop's time. ``AcceptLane`` is a
pure ASGI middleware placed inside notifyd's own (request id, CORS, body limit, so each still
applies) that answers the common request, a JSON body with no query string, itself: the body
validated once from the raw bytes, the same ``Guard`` admitting the caller, the same
``accept``, the answer serialised once, and errors rendered by the app's own problem handlers.
Anything else (a body that does not validate, another content type, a query string, another
route) goes on to FastAPI with the body replayed, and is answered as it always was; the route
stays declared as before, so the OpenAPI document does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd.api.auth import STATE_KEY, Guard, Principal, token_of
from notifyd.errors import Forbidden, NotifydError
from notifyd.models import NotificationAccepted, NotificationCreate
from notifyd.notifications.submit import Submission
from notifyd.runtime import Runtime
from notifyd.tokens import Scope as TokenScope
from notifyd.tracking.errors import TrackingError
from notifyd.tracking.tasks import TaskBatch

PATH = "/v1/notifications"
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
    submission: Submission = await runtime.submitter.submit(
        batch, body, caller=caller.name, idempotency_key=idempotency_key
    )
    accepted = submission.accepted
    headers = {"Location": f"{PATH}/{accepted.id}"}
    if submission.replayed:
        headers["Idempotency-Replay"] = "true"
    else:
        runtime.metrics.observe_accepted(accepted)
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
    """Pure ASGI middleware answering the common ``POST /v1/notifications`` (see the module)."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        token: str | None = None
        idempotency_key: str | None = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
            elif name == b"authorization":
                token = token_of(value.decode("latin-1"))
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
        if not json_body:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body: nothing was accepted
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        try:
            body = NotificationCreate.model_validate_json(raw)
        except ValidationError:
            # FastAPI words the 422 as it always has.
            await self.app(scope, _replaying(raw, receive), send)
            return
        try:
            await self._accept(scope, send, body, token, idempotency_key)
        except RENDERED as exc:
            response = await self._handler(scope, exc)(Request(scope), exc)
            await response(scope, _replaying(raw, receive), send)

    async def _accept(
        self,
        scope: Scope,
        send: Send,
        body: NotificationCreate,
        token: str | None,
        idempotency_key: str | None,
    ) -> None:
        guard: Guard = getattr(scope["app"].state, STATE_KEY)
        client = scope["client"][0] if scope.get("client") else "unknown"
        caller = await guard.admit(client, token, SEND)
        batch = TaskBatch(self.runtime.tracker)
        accepted, headers = await accept(self.runtime, batch, body, caller, idempotency_key)
        payload = accepted.__pydantic_serializer__.to_json(accepted)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                    *((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _handler(scope: Scope, exc: Exception) -> ErrorHandler:
        """The app's own handler for ``exc``, found as Starlette finds it (by the class's MRO)."""
        handlers: dict[Any, ErrorHandler] = scope["app"].exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        raise exc
