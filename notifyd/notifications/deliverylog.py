"""The server log's account of delivery: one line per attempt that did not deliver.

A failed attempt that will be retried logs at WARNING, a run that failed for good at ERROR, a
delivery at DEBUG. Each line names the run, the channel and the recipient as runs show it
(masked), and carries the same values as structured fields (``extra``) for JSON log lines.

Apprise logs a URL it cannot parse at ERROR, although to notifyd that is a client's 422, and
its lines may hold a URL's tokens; what it reports during a send is recorded on the attempt.
``quiet_apprise`` sends its lines on at DEBUG.
"""

from __future__ import annotations

import logging
from datetime import datetime

from notifyd.redact import redact, redact_urls_in
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.models import RunStatus
from notifyd.tracking.outcomes import AttemptResult

log = logging.getLogger("notifyd.delivery")

MAX_ERROR = 300  # of the error in the line itself; the field keeps what the attempt stored
_CONTROL = {
    **{code: f"\\x{code:02x}" for code in (*range(32), *range(127, 160))},
    **{code: f"\\u{code:04x}" for code in (0x2028, 0x2029)},
    10: "\\n",
    13: "\\r",
}


def one_line(text: str, limit: int = MAX_ERROR) -> str:
    """``text`` on one line (control characters escaped: a peer's answer cannot forge a log
    line), cut to ``limit``."""
    line = text.translate(_CONTROL)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def observe_attempt(run: ClaimedRun, result: AttemptResult) -> None:
    """Log how one attempt ended (the dispatcher's ``on_attempt`` observer)."""
    failed_for_good = result.status == RunStatus.failed
    if result.status == RunStatus.succeeded:
        level = logging.DEBUG
    else:
        level = logging.ERROR if failed_for_good else logging.WARNING
    if not log.isEnabledFor(level):
        return
    channel = run.queue or "-"
    recipient = one_line(str(redact(run.label)) if run.label else "-")
    error = result.short_error or ""
    fields = {
        "run_id": run.id,
        "channel": channel,
        "recipient": recipient,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "outcome": result.outcome.value,
        "status": result.status.value,
        "error": error or None,
        "next_attempt_at": _iso(result.next_attempt_at),
        "duration_ms": round(result.duration_ms, 1),
    }
    where = f"run {run.id} ({channel} to {recipient})"
    tried = f"attempt {run.attempt} of {run.max_attempts}"
    if result.status == RunStatus.succeeded:
        log.debug("delivered %s at %s", where, tried, extra=fields)
    elif failed_for_good:
        log.error(
            "delivery of %s failed for good at %s (%s): %s",
            where,
            tried,
            result.outcome.value,
            one_line(error),
            extra=fields,
        )
    else:
        log.warning(
            "delivery of %s failed at %s (%s): %s; next attempt at %s",
            where,
            tried,
            result.outcome.value,
            one_line(error),
            _iso(result.next_attempt_at),
            extra=fields,
        )


class _AtDebug(logging.Handler):
    """Passes Apprise's records on at DEBUG, under their own name."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _APPRISE_AT_DEBUG.isEnabledFor(logging.DEBUG):
            return
        quieter = logging.makeLogRecord(record.__dict__)
        quieter.levelno, quieter.levelname = logging.DEBUG, "DEBUG"
        # Apprise logs the URLs it loads and posts to, whose paths carry the services' tokens.
        quieter.msg, quieter.args = redact_urls_in(record.getMessage()), None
        _APPRISE_AT_DEBUG.handle(quieter)


_APPRISE_AT_DEBUG = logging.getLogger("notifyd.apprise")


def quiet_apprise() -> None:
    """Apprise's own log lines go on at DEBUG (idempotent). Its in-memory captures, which the
    channel records on each attempt, still see them at their own level."""
    apprise_log = logging.getLogger("apprise")
    if not any(isinstance(handler, _AtDebug) for handler in apprise_log.handlers):
        apprise_log.addHandler(_AtDebug())
    apprise_log.propagate = False
