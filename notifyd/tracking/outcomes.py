"""One attempt: the run it is made on (ClaimedRun) and how it ended (AttemptResult), made from
what the task returned or raised and decided by the retry policy; then put in a form every
store accepts. Below ``admin``: the worker's operations take these, never the other way round."""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from notifyd.tracking.errors import PermanentError, ReleasedError, TaskError
from notifyd.tracking.models import Outcome, RunStatus
from notifyd.tracking.retry import RetryPolicy

MAX_ERROR = 2000
RELEASE_SECONDS = 60.0
MAX_TRACEBACK = 8000


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# building one three times as slow; these are made for every run. Nothing changes them.
@dataclass(slots=True)
class ClaimedRun:
    """A run this worker now holds, with the number of the attempt it is about to make."""

    id: str
    task_name: str
    args: dict[str, Any]
    queue: str | None
    attempt: int
    max_attempts: int
    interruptions: int
    started_at: datetime
    label: str | None = None
    created_at: datetime | None = None  # when the run was made (accepted)
    trace_context: str | None = None  # the W3C traceparent it was made under, if recorded


# Not frozen, as ClaimedRun: made for every attempt; copies go through dataclasses.replace.
@dataclass(slots=True)
class AttemptResult:
    """How an attempt ended and what the run becomes."""

    run_id: str
    attempt: int
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    status: RunStatus
    next_attempt_at: datetime | None = None
    retry_delay_seconds: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    response: dict[str, Any] | None = None
    released: bool = False  # not charged to the run's attempts (see ReleasedError)

    @property
    def short_error(self) -> str | None:
        """``Type: message``, as a run's ``last_error`` shows it."""
        if self.error_type is None and self.error_message is None:
            return None
        return f"{self.error_type or 'Error'}: {self.error_message or ''}".strip()


def _clean_text(text: str) -> str:
    # PostgreSQL refuses NUL in text; no driver takes lone surrogates (e.g. from undecodable
    # bytes in an SMTP reply decoded with surrogateescape).
    return text.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _clean_text(str(value))  # not JSON: keep what it says


def _is_clean(value: Any) -> bool:
    """Whether ``value`` is already what ``_clean_json`` would make of it (the common case)."""
    if isinstance(value, str):
        return "\x00" not in value and (value.isascii() or _clean_text(value) == value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_clean(k) and _is_clean(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_clean(v) for v in value)
    if value is None or isinstance(value, bool | int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def storable(result: AttemptResult) -> AttemptResult:
    """The result with every text and JSON value in a form any store accepts."""
    if (
        result.error_type is None
        and result.error_message is None
        and result.traceback is None
        and _is_clean(result.response)
    ):
        return result  # nothing to clean (most successes)
    return dataclasses.replace(
        result,
        error_type=_clean_text(result.error_type) if result.error_type else result.error_type,
        error_message=_clean_text(result.error_message) if result.error_message else None,
        traceback=_clean_text(result.traceback) if result.traceback else None,
        response=_clean_json(result.response) if result.response is not None else None,
    )


def minimal(result: AttemptResult, problem: BaseException) -> AttemptResult:
    """The result stripped to what cannot fail to store, saying why."""
    return dataclasses.replace(
        result,
        error_message=f"the attempt's outcome could not be stored ({type(problem).__name__})",
        traceback=None,
        response=None,
    )


def succeeded(run: ClaimedRun, response: Any, *, started: float, now: datetime) -> AttemptResult:
    """The attempt worked (``started`` is its ``time.perf_counter()``); a dict it returned is
    recorded as the peer's answer."""
    return AttemptResult(
        run_id=run.id,
        attempt=run.attempt,
        started_at=run.started_at,
        outcome=Outcome.succeeded,
        finished_at=now,
        duration_ms=(time.perf_counter() - started) * 1000,
        status=RunStatus.succeeded,
        response=response if isinstance(response, dict) else None,
    )


def failed(
    run: ClaimedRun, exc: Exception, *, started: float, now: datetime, policy: RetryPolicy
) -> AttemptResult:
    """The attempt raised ``exc``: the policy decides whether and when the run goes again."""
    if isinstance(exc, ReleasedError):
        return _released(run, exc, started=started, now=now)
    permanent = isinstance(exc, PermanentError)
    delay = policy.decide(
        charged=run.attempt - run.interruptions,
        max_attempts=run.max_attempts,
        retry_after=exc.retry_after if isinstance(exc, TaskError) else None,
        permanent=permanent,
    )
    return AttemptResult(
        run_id=run.id,
        attempt=run.attempt,
        started_at=run.started_at,
        outcome=Outcome.permanent_error if permanent else Outcome.transient_error,
        finished_at=now,
        duration_ms=(time.perf_counter() - started) * 1000,
        status=RunStatus.failed if delay is None else RunStatus.retrying,
        next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
        retry_delay_seconds=delay,
        error_type=type(exc).__name__,
        error_message=_describe(exc)[:MAX_ERROR],
        traceback=_traceback(exc)[-MAX_TRACEBACK:],
        response=exc.response if isinstance(exc, TaskError) else None,
    )


def _released(
    run: ClaimedRun, exc: ReleasedError, *, started: float, now: datetime
) -> AttemptResult:
    delay = exc.retry_after if exc.retry_after is not None else RELEASE_SECONDS
    return AttemptResult(
        run_id=run.id,
        attempt=run.attempt,
        started_at=run.started_at,
        outcome=Outcome.interrupted,
        finished_at=now,
        duration_ms=(time.perf_counter() - started) * 1000,
        status=RunStatus.retrying,
        next_attempt_at=now + timedelta(seconds=delay),
        retry_delay_seconds=delay,
        error_type=type(exc).__name__,
        error_message=_describe(exc)[:MAX_ERROR],
        released=True,
    )


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails still deserves a record
        return f"<{type(exc).__name__} could not be described>"


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:
        return f"<traceback of {type(exc).__name__} unavailable>"
