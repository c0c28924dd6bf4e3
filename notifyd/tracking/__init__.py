"""Durable, tracked background runs for FastAPI: BackgroundTasks that survive crashes and restarts.

- ``TaskRegistry`` / ``@registry.task()``: task functions registered by name.
- ``TrackedTasks``: the route dependency; ``add_task`` records a durable run.
- ``Tracker``: the writer and the dispatcher, run by an app's lifespan.
- ``TransientError`` / ``PermanentError``: how a task says whether a retry can help.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifyd.tracking.dispatcher import Dispatcher, DispatcherConfig
    from notifyd.tracking.errors import PermanentError, TaskError, TransientError
    from notifyd.tracking.registry import TaskContext, TaskRegistry
    from notifyd.tracking.retry import RetryPolicy
    from notifyd.tracking.tasks import TaskBatch, TrackedTasks, get_tracker
    from notifyd.tracking.tracker import Tracker
    from notifyd.tracking.writer import Writer

# Imported on first use: the CLI's store commands need the errors and queries, not FastAPI.
_EXPORTS = {
    "Dispatcher": "notifyd.tracking.dispatcher",
    "DispatcherConfig": "notifyd.tracking.dispatcher",
    "PermanentError": "notifyd.tracking.errors",
    "TaskError": "notifyd.tracking.errors",
    "TransientError": "notifyd.tracking.errors",
    "TaskContext": "notifyd.tracking.registry",
    "TaskRegistry": "notifyd.tracking.registry",
    "RetryPolicy": "notifyd.tracking.retry",
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
    "PermanentError",
    "RetryPolicy",
    "TaskBatch",
    "TaskContext",
    "TaskError",
    "TaskRegistry",
    "TrackedTasks",
    "Tracker",
    "TransientError",
    "Writer",
    "get_tracker",
]
