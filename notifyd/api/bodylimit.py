"""Refuse request bodies over a size limit with 413, counting the bytes as they stream in.

A declared ``Content-Length`` over the limit is refused before anything is read; one within it
needs no counting (the server hands on exactly that many bytes); a chunked body (no length) is
counted as it arrives and refused as soon as it crosses the limit.

The refusal is problem+json unless ``refusal`` answers otherwise for the request: the ntfy and
Gotify paths answer in their peers' error shapes, known from the method and path alone. A route
that reads a chunked body past the limit gets ``BodyTooLarge`` and may answer it in its own.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd.api.problems import problem_response


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body crosses the limit; rendered as problem+json."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


# The answer to a body over the limit in a request's own dialect, or None for problem+json.
Refusal = Callable[[Scope, int], Response | None]


class BodyLimitMiddleware:
    """Pure ASGI middleware enforcing ``max_bytes`` on every HTTP request body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, refusal: Refusal | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refusal = refusal

    def _refuse(self, scope: Scope) -> Response:
        answer = self.refusal(scope, self.max_bytes) if self.refusal is not None else None
        if answer is not None:
            return answer
        detail = BodyTooLarge(self.max_bytes).detail
        return problem_response(413, detail, instance=scope.get("path"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope)(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and not chunked:
            # The server delivers exactly the declared length, already known to be within it.
            await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Normally the app's handlers answer it; this covers a body read outside a route.
            if started:
                raise
            await self._refuse(scope)(scope, receive, send)
