"""Submit notifications and look them up."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from notifyd import service
from notifyd.api.deps import RuntimeDep, SessionDep
from notifyd.api.problems import problem_responses
from notifyd.models import NotificationAccepted, NotificationCreate, NotificationPublic
from notifyd.tracking import TrackedTasks

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(422),
)
async def create_notification(
    body: NotificationCreate, tasks: TrackedTasks, runtime: RuntimeDep, response: Response
) -> NotificationAccepted:
    """Accept a notification: it is stored durably before the 202, then delivered in the background."""
    accepted = await service.submit_notification(batch=tasks, body=body, channels=runtime.channels)
    response.headers["Location"] = f"/v1/notifications/{accepted.id}"
    return accepted


@router.get("/{notification_id}", responses=problem_responses(404))
def read_notification(notification_id: str, session: SessionDep) -> NotificationPublic:
    """A notification and the state of its delivery runs."""
    return service.get_notification(session=session, notification_id=notification_id)
