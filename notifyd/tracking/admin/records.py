"""What the run operations take and give: the tables' names, filters, and records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
)

from notifyd.tracking.clock import id_floor_after, id_floor_before
from notifyd.tracking.models import (
    RUN_ID_PREFIX,
    Outcome,
    RunStatus,
    attempts,
    runs,
    tally,
)

RUNS = runs
ATTEMPTS = attempts
TALLY = tally
# A run whose worker died this many times mid-attempt is failed: a task that takes its process
# down with it would otherwise loop forever. (Graceful shutdowns do not count.)
MAX_CRASHES = 5
MAX_PAGE = 500
PRUNE_CHUNK = 2000


# ---- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """A run as stored (every column but the lease bookkeeping)."""

    id: str
    task_name: str
    queue: str | None
    label: str | None
    ref: str | None
    args: dict[str, Any]
    status: RunStatus
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None

    @property
    def duration_ms(self) -> float | None:
        """From the first attempt's start to the end, for a finished run."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a run."""

    number: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: Outcome
    error_type: str | None
    error_message: str | None
    traceback: str | None
    retry_delay_seconds: float | None
    response: dict[str, Any] | None


@dataclass(frozen=True)
class RunDetail:
    """A run and every attempt, oldest first."""

    run: RunRecord
    attempts: list[AttemptRecord]


@dataclass(frozen=True)
class RunPage:
    """Runs newest first; ``next_cursor`` continues after the last one."""

    items: list[RunRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class RunStats:
    """Counts by status, and by queue then status; since when the longest-waiting queued run
    has been due."""

    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_queued_at: datetime | None


@dataclass(frozen=True)
class QueueFigures:
    """What a scrape shows of the whole store: runs not finished, and the oldest due one;
    ``by_queue`` is every count of the tally, by queue ("-" for none) and status."""

    active: dict[str, int]
    oldest_due_at: datetime | None
    by_queue: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list, a count or a bulk operation looks at (every field optional)."""

    statuses: tuple[RunStatus, ...] = ()
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ref: str | None = None

    def condition(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses."""
        clauses: list[ColumnElement[bool]] = []
        if self.statuses:
            clauses.append(RUNS.c.status.in_([s.value for s in self.statuses]))
        if self.queue is not None:
            clauses.append(RUNS.c.queue == self.queue)
        # Times by the id too: its index finds the range (``created_at`` has none), the
        # time itself decides.
        if self.since is not None:
            clauses.append(RUNS.c.id >= id_floor_before(RUN_ID_PREFIX, self.since))
            clauses.append(RUNS.c.created_at >= self.since)
        if self.until is not None:
            clauses.append(RUNS.c.id < id_floor_after(RUN_ID_PREFIX, self.until))
            clauses.append(RUNS.c.created_at < self.until)
        if self.ref is not None:
            clauses.append(RUNS.c.ref == self.ref)
        return clauses


RECORD_COLUMNS = [RUNS.c[name] for name in RunRecord.__dataclass_fields__]
ATTEMPT_COLUMNS = [ATTEMPTS.c[name] for name in AttemptRecord.__dataclass_fields__]


def to_record(row: Row[Any, *tuple[Any, ...]], *, extra: tuple[str, ...] = ()) -> RunRecord:
    """The record of a row of ``RECORD_COLUMNS`` (and the ``extra`` columns, left out)."""
    values = row._asdict()
    for name in extra:
        del values[name]
    values["status"] = RunStatus(values["status"])
    return RunRecord(**values)


def to_attempt(row: Row[Any]) -> AttemptRecord:
    values = row._asdict()
    values["outcome"] = Outcome(values["outcome"])
    return AttemptRecord(**values)


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed: runs (with their attempts), and what the caller's hook removed."""

    runs: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: PruneResult) -> PruneResult:
        extra = dict(self.extra)
        for name, count in other.extra.items():
            extra[name] = extra.get(name, 0) + count
        return PruneResult(self.runs + other.runs, extra)

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return self.runs + sum(self.extra.values())


@dataclass(frozen=True)
class Histogram:
    """Attempts started since ``since``, counted by outcome in buckets of ``bucket_seconds``.

    ``counts[outcome][i]`` is the number of attempts with that outcome that started in bucket
    ``i`` (``since + i * bucket_seconds`` onwards); every outcome has ``buckets`` entries.
    """

    since: datetime
    bucket_seconds: int
    buckets: int
    counts: dict[str, list[int]]
