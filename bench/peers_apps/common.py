"""What both peers share: the route's answer, the task's line, the server's start-up."""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO

from fastapi import FastAPI

from bench.server import serve_app
from notifyd.models import NotificationAccepted, NotificationCreate, RunStatus, TaskSummary
from notifyd.timeutil import new_id, utcnow

LOG_FILE_ENV = "BENCH_PEER_LOG"
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_lock = threading.Lock()
_handle: list[TextIO] = []


def accepted(body: NotificationCreate) -> tuple[NotificationAccepted, list[dict[str, Any]]]:
    """The 202 answer notifyd gives, and one task payload per recipient (as notifyd has one
    run per recipient)."""
    notification_id = new_id("ntf")
    created_at = utcnow().isoformat()
    tasks, payloads = [], []
    for to in body.recipients():
        run_id = new_id("run")
        tasks.append(TaskSummary(id=run_id, channel=body.channel, to=to, status=RunStatus.queued))
        payloads.append(
            {
                "delivery_id": run_id,
                "notification_id": notification_id,
                "to": to,
                "subject": body.subject,
                "message": body.message,
                "created_at": created_at,
            }
        )
    return NotificationAccepted(id=notification_id, status="accepted", tasks=tasks), payloads


def append_line(payload: dict[str, Any]) -> None:
    """What notifyd's log channel does for a delivery: one JSON line, flushed."""
    line = _LINE.encode(payload | {"delivered_at": utcnow().isoformat()})
    with _lock:
        if not _handle:  # opened once per process and kept, as the log channel keeps its own
            path = Path(os.environ[LOG_FILE_ENV])
            _handle.append(path.open("a", encoding="utf-8"))
        _handle[0].write(line + "\n")
        _handle[0].flush()


def serve(app: FastAPI, description: str) -> None:
    """``--port N``: serve ``app`` as the bench servers are served (uvloop, httptools, no
    access log)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    serve_app(app, args.port)
