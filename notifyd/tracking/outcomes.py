"""How an attempt ended (AttemptResult), in a form every store accepts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifyd.tracking.models import Outcome, RunStatus


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended and what the run becomes."""

    run_id: str
    attempt: int
    outcome: Outcome
    finished_at: datetime
    duration_ms: float
    status: RunStatus
    next_attempt_at: datetime | None = None
    retry_delay_seconds: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    response: dict[str, Any] | None = None

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


def storable(result: AttemptResult) -> AttemptResult:
    """The result with every text and JSON value in a form any store accepts."""
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
