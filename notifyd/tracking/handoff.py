"""Hand-off: new runs committed already claimed by this process's idle dispatcher.

A run accepted while the dispatcher has a free slot and no older due run waits would otherwise
be stored queued, claimed a moment later by a second transaction (a read of the due index, an
update of the run and its indexes, two tally rows) and only then started. Instead its commit
stores it as the claim would leave it (running, leased by this dispatcher, attempt 1 under way)
and hands it to the dispatcher in memory once the commit is durable. Nothing else changes: the
lease is renewed, and a crash before the attempt ends is rescued by the sweep, exactly as for a
claimed run. A commit that fails gives the slots back. While attempts are short, a run may be
handed off with no slot free yet: it waits in memory, claimed, for the next one (see
``dispatcher``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from notifyd.tracking.dispatcher import Dispatcher
from notifyd.tracking.models import RunStatus
from notifyd.tracking.outcomes import ClaimedRun

RUNNING = RunStatus.running.value


@dataclass
class HandOff:
    """The runs a commit stores as claimed."""

    claimed: list[ClaimedRun] = field(default_factory=list)


def hand_off(dispatcher: Dispatcher, rows: list[dict[str, Any]]) -> HandOff:
    """Rewrite the staged run rows the dispatcher has slots for as claimed by it.

    Only runs due at once are taken (a scheduled one waits in the store); each taken one holds
    a slot promised by ``Dispatcher.reserve`` until ``adopt`` or ``release`` ends it.
    """
    taken = HandOff()
    if not dispatcher.on_own_loop():
        return taken
    lease = timedelta(seconds=dispatcher.config.lease_seconds)
    worker = dispatcher.worker_id
    for row in rows:
        now = row["created_at"]
        if row["next_attempt_at"] > now or not dispatcher.reserve(row["queue"]):
            continue
        row["status"] = RUNNING
        row["attempts"] = 1
        row["worker"] = worker
        row["lease_expires_at"] = now + lease
        row["started_at"] = now
        row["attempt_started_at"] = now
        taken.claimed.append(
            ClaimedRun(
                id=row["id"],
                task_name=row["task_name"],
                args=dict(row["args"]),
                queue=row["queue"],
                attempt=1,
                max_attempts=row["max_attempts"],
                interruptions=0,
                started_at=now,
                label=row["label"],
                created_at=now,
                trace_context=row["trace_context"],
            )
        )
    return taken


def release(dispatcher: Dispatcher, taken: HandOff) -> None:
    """Give back the slots of a hand-off whose commit failed (nothing of it was stored)."""
    for run in taken.claimed:
        dispatcher.unreserve(run.queue)
