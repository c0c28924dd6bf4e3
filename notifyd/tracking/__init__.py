"""Durable, tracked background runs for FastAPI: BackgroundTasks that survive crashes and restarts.

- ``TaskRegistry`` / ``@registry.task()``: task functions registered by name.
- ``TrackedTasks``: the route dependency; ``add_task`` records a durable run.
- ``Tracker``: the writer and the dispatcher, run by an app's lifespan.
- ``TransientError`` / ``PermanentError``: how a task says whether a retry can help.
"""

from notifyd.tracking.dispatcher import Dispatcher, DispatcherConfig
from notifyd.tracking.errors import PermanentError, TaskError, TransientError
from notifyd.tracking.registry import TaskContext, TaskRegistry
from notifyd.tracking.retry import RetryPolicy
from notifyd.tracking.tasks import TaskBatch, TrackedTasks, get_tracker
from notifyd.tracking.tracker import Tracker
from notifyd.tracking.writer import Writer

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
