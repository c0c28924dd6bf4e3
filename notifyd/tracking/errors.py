"""How a task tells the dispatcher whether trying again can help, and what admin refuses."""

from __future__ import annotations

from typing import Any


class TaskError(Exception):
    """A task failure that carries what the attempt should record."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        response: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.response = response


class TransientError(TaskError):
    """Trying again later may succeed (timeouts, 4xx SMTP replies, 5xx HTTP, refused connections)."""


class PermanentError(TaskError):
    """Trying again cannot succeed (a rejected address, 410 Gone, an unknown task): fail now."""


class ReleasedError(TaskError):
    """This process cannot run the task now, but another (or this one later) may: the attempt
    is recorded as interrupted, not charged to the run's budget, and the run is due again
    after ``retry_after`` seconds (a key this process lacks, say)."""


class TrackingError(Exception):
    """An operator's request on runs that cannot be done (see ``notifyd.tracking.admin``)."""


class RunNotFound(TrackingError, LookupError):
    """No run has this id."""


class InvalidTransition(TrackingError):
    """The run is in a state the operation does not move from (retrying a succeeded run)."""
