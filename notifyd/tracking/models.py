"""The tracker's tables (``task_run``, ``attempt``), run states, their groups and transitions.

The tables are generic, as a job queue's rows are (River's ``JobRow``): a run names its task, an
optional ``queue`` (notifyd uses the channel), a ``label`` shown to operators (notifyd: the
recipient as it may be shown) and a ``ref``, an indexed reference to the caller's own object
(notifyd: the notification id). Nothing here knows what the caller's objects are.

The tables live on their own ``metadata``, so an app creates only these two (see
``notifyd.tracking.schema``) and its own metadata stays its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal_column,
    text,
)

from notifyd.tracking.clock import UTCDateTime


class RunStatus(StrEnum):
    """The life of a tracked run (see ``TRANSITIONS`` for how one state leads to another)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    retrying = "retrying"
    failed = "failed"
    cancelled = "cancelled"


class Outcome(StrEnum):
    """How one attempt ended."""

    running = "running"
    succeeded = "succeeded"
    transient_error = "transient_error"
    permanent_error = "permanent_error"
    interrupted = "interrupted"


# ---- groups ---------------------------------------------------------------------------------

DUE = (RunStatus.queued, RunStatus.retrying)
"""Waiting for a worker: claimed once ``next_attempt_at`` has passed."""
DUE_STATE = "status IN ({})".format(", ".join(f"'{status.value}'" for status in DUE))
"""SQL true for a run in a due state: the due index holds only these runs, and a query finds
it only when its WHERE clause has this very term (SQLite's rule; PostgreSQL's generic plans
for a bound status need it too)."""


def in_due_state() -> ColumnElement[bool]:
    """The ``DUE_STATE`` term, for a query on ``task_run`` that should use the due index."""
    return literal_column(DUE_STATE)


ACTIVE = (RunStatus.queued, RunStatus.retrying, RunStatus.running)
"""Not finished: waiting or running."""
FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
"""Final until an operator retries: the only runs pruning may delete."""


# ---- transitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A named move between states: who may make it, from where, to where."""

    name: str
    sources: tuple[RunStatus, ...]
    targets: tuple[RunStatus, ...]

    @property
    def source_values(self) -> list[str]:
        """The source states as stored (for ``WHERE status IN (...)``)."""
        return [s.value for s in self.sources]

    def describe_sources(self) -> str:
        """``failed or cancelled``: for messages that refuse a move."""
        return " or ".join(s.value for s in self.sources)


CLAIM = Transition("claim", DUE, (RunStatus.running,))
FINISH = Transition(
    "finish", (RunStatus.running,), (RunStatus.succeeded, RunStatus.retrying, RunStatus.failed)
)
INTERRUPT = Transition("interrupt", (RunStatus.running,), (RunStatus.retrying, RunStatus.failed))
CANCEL = Transition("cancel", DUE, (RunStatus.cancelled,))
RETRY = Transition("retry", (RunStatus.failed, RunStatus.cancelled), (RunStatus.queued,))
RETRY_NOW = Transition("retry now", (RunStatus.retrying,), (RunStatus.queued,))

TRANSITIONS = (CLAIM, FINISH, INTERRUPT, CANCEL, RETRY, RETRY_NOW)
"""Every move a run can make; nothing else changes a run's status."""


def allowed_moves() -> dict[RunStatus, frozenset[RunStatus]]:
    """For each state, the states a run in it may move to."""
    moves: dict[RunStatus, set[RunStatus]] = {status: set() for status in RunStatus}
    for transition in TRANSITIONS:
        for source in transition.sources:
            moves[source].update(transition.targets)
    return {status: frozenset(targets) for status, targets in moves.items()}


# ---- tables ---------------------------------------------------------------------------------

metadata = MetaData()
# A run's id: this, then a ULID-style id that encodes its ``created_at`` (``clock.new_id``).
# The primary key's index is then an index on creation time too: ``created_at`` has none.
RUN_ID_PREFIX = "run"

runs = Table(
    "task_run",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("task_name", String(200), nullable=False),
    Column("queue", String(40), nullable=True),
    Column("label", Text, nullable=True),
    Column("ref", String(100), nullable=True, index=True),
    Column("args", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("interruptions", Integer, nullable=False),
    Column("crashes", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("worker", String(200), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # While running: when the attempt under way began. An attempt's row is written once, when
    # it ends (one insert, not an insert and an update); until then this and ``worker`` and
    # ``attempts`` are its record, which reads show as the open attempt.
    Column("attempt_started_at", UTCDateTime(), nullable=True),
    # The W3C trace context (a ``traceparent``) the run was made under, when the caller records
    # one: its attempts join the trace of the request that made it, in any process.
    Column("trace_context", String(200), nullable=True),
    # Only the runs waiting for a worker: most runs are never in it (a run handed to the
    # dispatcher at its commit is stored running), and none once finished.
    Index(
        "ix_task_run_due",
        "status",
        "next_attempt_at",
        sqlite_where=text(DUE_STATE),
        postgresql_where=text(DUE_STATE),
    ),
    # Lists are newest first by id (ids sort by creation): filtered by status or queue, an
    # index in id order finds a page without sorting every match.
    Index("ix_task_run_status_id", "status", "id"),
    Index("ix_task_run_queue_id", "queue", "id"),
)

# Run counts by queue and status, kept exact by triggers on ``task_run`` (see
# ``notifyd.tracking.schema``): every insert, status change and delete adds a +1/-1 row, and
# ``admin.compact_tally`` folds them into one row per (queue, status) (at each sweep, and on
# SQLite every ``leases.FOLD_SECONDS``). Counting
# is then a sum over a few dozen rows, not a scan of every run; inserting a row (never
# updating a shared counter) keeps concurrent writers from waiting on each other.
tally = Table(
    "task_run_tally",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("queue", String(40), nullable=True),
    Column("status", String(20), nullable=False),
    Column("delta", Integer, nullable=False),
)

attempts = Table(
    "attempt",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        String(40),
        ForeignKey("task_run.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("number", Integer, nullable=False),
    Column("worker", String(200), nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("outcome", String(20), nullable=False),
    Column("error_type", String(200), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("retry_delay_seconds", Float, nullable=True),
    Column("response", JSON, nullable=True),
    # The dashboard's chart counts the last hour's and day's attempts by outcome: a range of
    # this index, never a scan of every attempt.
    Index("ix_attempt_started_outcome", "started_at", "outcome"),
)
