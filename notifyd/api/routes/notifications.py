"""Submit notifications and look them up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from notifyd.api.auth import ReadOwnCaller, SendCaller
from notifyd.api.deps import ConnDep, RuntimeDep
from notifyd.api.fastaccept import accept
from notifyd.api.problems import problem_responses
from notifyd.models import NotificationAccepted, NotificationCreate, NotificationPublic
from notifyd.notifications import views
from notifyd.tracking.tasks import TrackedTasks

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


async def create_notification(
    body: NotificationCreate,
    caller: SendCaller,
    tasks: TrackedTasks,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Send at most once per key (kept 24 h): a repeat replays the first answer.",
        ),
    ] = None,
) -> NotificationAccepted:
    """Accept a notification: it is stored durably before the 202, then delivered in the background."""
    # The common request never gets here: AcceptLane answers it with the same accept().
    accepted, headers = await accept(runtime, tasks, body, caller, idempotency_key)
    response.headers.update(headers)
    return accepted


router.add_api_route(
    "",
    create_notification,
    methods=["POST"],
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(409, 422),
)


@router.get("/{notification_id}", responses=problem_responses(404))
def read_notification(
    notification_id: str, caller: ReadOwnCaller, conn: ConnDep
) -> NotificationPublic:
    """A notification and the state of its delivery runs (a ``send`` token sees only its own)."""
    return views.get_notification(conn, notification_id=notification_id, owner=caller.owner)
