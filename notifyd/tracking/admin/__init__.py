"""Every operation on runs, with its SQL: the one place that reads and moves them.

As procrastinate's ``JobManager`` and River's driver interface do, this package holds the whole
vocabulary of the queue, used alike by the dispatcher, the HTTP routes, the CLI, metrics and
retention:

- the worker's: ``claim_runs`` / ``claim_due``, ``finish_attempts``, ``renew_leases``,
  ``interrupt_runs``
- an operator's: ``retry_run`` (a failed or cancelled run afresh; a retrying run now),
  ``retry_runs`` (in bulk), ``cancel_run``, ``prune_chunk`` / ``prune``
- reading: ``get_run``, ``list_runs``, ``search_runs``, ``count_runs``, ``runs_for_ref``,
  ``stats``, ``queue_figures``, ``attempt_histogram``, ``has_runs``

Use it as one module (``from notifyd.tracking import admin; admin.retry_run(...)``); the parts
are ``records`` (filters and records), ``worker`` (claim and finish; ``worker_pg`` their
one-statement forms on PostgreSQL), ``leases`` (renew,
rescue, fold the tally), ``operator`` and ``reads``.

Writes take a ``Connection`` inside a write transaction (the server passes its group-commit
writer's, the CLI its own) and run only their own statements. Every state change is a
conditional UPDATE from the sources its ``Transition`` (``notifyd.tracking.models``) allows, so
an operator and a worker can never race a run into a state the transitions do not list.
"""

from __future__ import annotations

from notifyd.tracking.admin.leases import compact_tally, interrupt_runs, renew_leases
from notifyd.tracking.admin.operator import (
    RETRYABLE,
    argument_values,
    cancel_run,
    cancel_runs,
    count_prunable,
    prunable,
    prune,
    prune_chunk,
    retry_run,
    retry_runs,
    rewrite_argument,
)
from notifyd.tracking.admin.reads import (
    attempt_histogram,
    count_due,
    count_runs,
    find_run,
    get_run,
    has_runs,
    list_runs,
    queue_figures,
    runs_for_ref,
    search_runs,
    stats,
)
from notifyd.tracking.admin.records import (
    ATTEMPTS,
    MAX_CRASHES,
    MAX_PAGE,
    PRUNE_CHUNK,
    RUNS,
    TALLY,
    AttemptRecord,
    Histogram,
    PruneResult,
    QueueFigures,
    RunDetail,
    RunFilter,
    RunPage,
    RunRecord,
    RunStats,
)
from notifyd.tracking.admin.worker import claim_due, claim_runs, finish_attempts
from notifyd.tracking.outcomes import ClaimedRun

__all__ = [
    "ATTEMPTS",
    "MAX_CRASHES",
    "MAX_PAGE",
    "PRUNE_CHUNK",
    "RETRYABLE",
    "RUNS",
    "TALLY",
    "AttemptRecord",
    "ClaimedRun",
    "Histogram",
    "PruneResult",
    "QueueFigures",
    "RunDetail",
    "RunFilter",
    "RunPage",
    "RunRecord",
    "RunStats",
    "argument_values",
    "attempt_histogram",
    "cancel_run",
    "cancel_runs",
    "claim_due",
    "claim_runs",
    "compact_tally",
    "count_due",
    "count_prunable",
    "count_runs",
    "find_run",
    "finish_attempts",
    "get_run",
    "has_runs",
    "interrupt_runs",
    "list_runs",
    "prunable",
    "prune",
    "prune_chunk",
    "queue_figures",
    "renew_leases",
    "retry_run",
    "retry_runs",
    "rewrite_argument",
    "runs_for_ref",
    "search_runs",
    "stats",
]
