"""The Celery peer: ``python -m bench.peers_apps.celery_app --port N`` serves a FastAPI route
calling ``.delay()`` (Redis broker, ``BENCH_REDIS_URL``); ``celery -A
bench.peers_apps.celery_app worker`` runs the task."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from fastapi import FastAPI

from bench.peers_apps.common import accepted, append_line, serve
from notifyd.models import NotificationAccepted, NotificationCreate

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

celery = Celery("bench_peers", broker=REDIS_URL)
celery.conf.update(
    task_ignore_result=True,  # as notifyd's route, answer without waiting for a result
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def deliver(payload: dict[str, Any]) -> None:
    """Append the delivery's line, as notifyd's log channel does."""
    append_line(payload)


deliver_task = celery.task(name="bench.deliver")(deliver)
app = FastAPI()


@app.post("/v1/notifications", status_code=202)
async def submit(body: NotificationCreate) -> NotificationAccepted:
    """Validate, queue one task per recipient with ``.delay()``, answer 202."""
    answer, payloads = accepted(body)
    for payload in payloads:
        deliver_task.delay(payload)
    return answer


if __name__ == "__main__":
    serve(app, __doc__ or "")
