"""A request id for every request: in ``request.state.request_id``, the logs and ``X-Request-ID``."""

from __future__ import annotations

import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_NAME = HEADER.lower().encode()
# A caller's own id is kept only when it cannot smuggle anything into a log line.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


_random = random.Random()


def new_request_id() -> str:
    """A fresh random request id (unique enough to find in logs; it guards nothing)."""
    return f"{_random.getrandbits(64):016x}"


def assign_request_id(scope: Scope, offered: str) -> str:
    """The request's id (``offered`` when it is safe to log, else a new one), kept in its state."""
    request_id = offered if _SAFE_ID.fullmatch(offered) else new_request_id()
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


class RequestIdMiddleware:
    """Pure ASGI middleware: reuse a safe ``X-Request-ID`` from the caller or make one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = ""
        for name, value in scope["headers"]:
            if name == _NAME:
                offered = value.decode("latin-1")
                break
        request_id = assign_request_id(scope, offered)
        header = (_NAME, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", ()) if h[0].lower() != _NAME]
                message["headers"] = [*kept, header]
            await send(message)

        await self.app(scope, receive, send_with_id)
