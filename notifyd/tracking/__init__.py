"""Durable, tracked background runs for FastAPI: BackgroundTasks that survive crashes and restarts.

A library of its own: nothing here imports the rest of notifyd.

- ``TaskRegistry`` / ``@registry.task()``: task functions registered by name.
- ``TrackedTasks``: the route dependency; ``add_task`` records a durable run.
- ``Tracker``: the writer and the dispatcher, run by an app's lifespan.
- ``TransientError`` / ``PermanentError``: how a task says whether a retry can help.
- ``RetryPolicy`` / ``RetryPolicies``: how often and when (the default is one attempt).
- ``install``: create or upgrade the tracker's two tables in an app's database.
- ``notifyd.tracking.admin``: every operation on runs (list, get, retry, cancel, prune, stats).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifyd.tracking.dispatcher import Dispatcher, DispatcherConfig
    from notifyd.tracking.engine import tracking_engine
    from notifyd.tracking.errors import (
        InvalidTransition,
        PermanentError,
        RunNotFound,
        TaskError,
        TrackingError,
        TransientError,
    )
    from notifyd.tracking.models import Outcome, RunStatus
    from notifyd.tracking.registry import TaskContext, TaskRegistry
    from notifyd.tracking.retry import RetryPolicies, RetryPolicy
    from notifyd.tracking.schema import install
    from notifyd.tracking.tasks import TaskBatch, TrackedTasks, get_tracker
    from notifyd.tracking.tracker import Tracker
    from notifyd.tracking.writer import Writer

# Imported on first use: the CLI's store commands need the errors and admin, not FastAPI.
_EXPORTS = {
    "Dispatcher": "notifyd.tracking.dispatcher",
    "DispatcherConfig": "notifyd.tracking.dispatcher",
    "tracking_engine": "notifyd.tracking.engine",
    "InvalidTransition": "notifyd.tracking.errors",
    "PermanentError": "notifyd.tracking.errors",
    "RunNotFound": "notifyd.tracking.errors",
    "TaskError": "notifyd.tracking.errors",
    "TrackingError": "notifyd.tracking.errors",
    "TransientError": "notifyd.tracking.errors",
    "Outcome": "notifyd.tracking.models",
    "RunStatus": "notifyd.tracking.models",
    "TaskContext": "notifyd.tracking.registry",
    "TaskRegistry": "notifyd.tracking.registry",
    "RetryPolicies": "notifyd.tracking.retry",
    "RetryPolicy": "notifyd.tracking.retry",
    "install": "notifyd.tracking.schema",
    "TaskBatch": "notifyd.tracking.tasks",
    "TrackedTasks": "notifyd.tracking.tasks",
    "get_tracker": "notifyd.tracking.tasks",
    "Tracker": "notifyd.tracking.tracker",
    "Writer": "notifyd.tracking.writer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Dispatcher",
    "DispatcherConfig",
    "InvalidTransition",
    "Outcome",
    "PermanentError",
    "RetryPolicies",
    "RetryPolicy",
    "RunNotFound",
    "RunStatus",
    "TaskBatch",
    "TaskContext",
    "TaskError",
    "TaskRegistry",
    "TrackedTasks",
    "Tracker",
    "TrackingError",
    "TransientError",
    "Writer",
    "get_tracker",
    "install",
    "tracking_engine",
]
