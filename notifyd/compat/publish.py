"""The one way in every compatibility endpoint shares: a notification to a named destination,
committed before the caller hears back."""

from __future__ import annotations

from time import perf_counter

from notifyd.compat.auth import Caller
from notifyd.errors import InvalidInput
from notifyd.inbox.store import message_id_of
from notifyd.models import NotificationCreate
from notifyd.notifications.submit import Submission
from notifyd.runtime import Runtime
from notifyd.tracking.tasks import TaskBatch


def message_id(runtime: Runtime, notification_id: str, destination: str) -> str:
    """The id a peer's publishing answer names: the id of the message kept in the inbox topic
    of the destination's own name (what a subscriber of that topic receives, and may ask for
    ``since=``), else the notification's."""
    try:
        kept = destination in runtime.destinations.get(destination).topics
    except InvalidInput:
        kept = False
    return message_id_of(notification_id, destination) if kept else notification_id


def has_destination(runtime: Runtime, name: str) -> bool:
    """Whether ``name`` is a configured destination."""
    try:
        runtime.destinations.get(name)
    except InvalidInput:
        return False
    return True


async def publish(
    runtime: Runtime,
    body: NotificationCreate,
    caller: Caller,
    *,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    endpoint: str = "ntfy",
) -> Submission:
    """Store ``body`` and its runs in one transaction; return once it is durable.

    The batch is this function's own (not the request's ``TrackedTasks``): an endpoint that
    answers an error in its peer's dialect must never have half a submission committed for it.
    ``endpoint`` (ntfy, gotify, alertmanager, grafana) labels the accept's duration.
    """
    if body.destination is not None:
        caller.check_destination(body.destination)
    started = perf_counter()
    batch = TaskBatch(runtime.tracker)
    submission = await runtime.submitter.submit(
        batch,
        body,
        caller=caller.name,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )
    if not submission.replayed:
        runtime.metrics.observe_accepted(
            submission.accepted, endpoint=endpoint, seconds=perf_counter() - started
        )
    return submission
