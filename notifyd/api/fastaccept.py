"""The accept path at the speed of FastAPI itself: ``POST /v1/notifications`` without the
per-request dependency solving.

FastAPI resolves a route's dependencies (auth, the tracked-tasks batch, the runtime, headers,
the app-wide parameter check) for every request; on the hot route that was about half of the
event loop's time. ``AcceptRoute`` keeps the route as declared, so the OpenAPI document and
every error stay exactly as they were, but answers the common request, a JSON body with no
query string, itself: the body validated once from the raw bytes, the same ``Guard`` admitting
the caller, the same submit, the answer serialised once. Anything else (a body that does not
validate, another content type, a query string) goes to FastAPI's own handler, which answers
it as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from notifyd.api.auth import Principal, bearer_token, get_guard
from notifyd.errors import Forbidden
from notifyd.models import NotificationAccepted, NotificationCreate
from notifyd.notifications.submit import Submission
from notifyd.runtime import Runtime
from notifyd.tokens import Scope
from notifyd.tracking.tasks import TaskBatch

SEND = frozenset({Scope.send, Scope.admin})
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


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
    headers = {"Location": f"/v1/notifications/{accepted.id}"}
    if submission.replayed:
        headers["Idempotency-Replay"] = "true"
    else:
        runtime.metrics.observe_accepted(accepted)
    return accepted, headers


def _plain_json(request: Request) -> bool:
    if request.scope.get("query_string"):
        return False
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class AcceptRoute(APIRoute):
    """An APIRoute whose common request skips FastAPI's dependency solving (see the module)."""

    def get_route_handler(self) -> Handler:
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if not _plain_json(request):
                return await declared(request)
            try:
                body = NotificationCreate.model_validate_json(await request.body())
            except ValidationError:
                return await declared(request)  # FastAPI words the 422 as it always has
            runtime: Runtime = request.app.state.runtime
            caller = await get_guard(request).admit(request, bearer_token(request), SEND)
            batch = TaskBatch(runtime.tracker)
            accepted, headers = await accept(
                runtime, batch, body, caller, request.headers.get("idempotency-key")
            )
            return Response(
                accepted.__pydantic_serializer__.to_json(accepted),
                status_code=202,
                headers=headers,
                media_type="application/json",
            )

        return handler
