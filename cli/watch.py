"""``tasks watch``: one frame of the live view (counts by status, newest runs, recent failures).

Every piece of data is a ``Text`` (or goes through the helpers of ``cli.render``, which make
one): recipients and errors may hold ``[red]`` and must be shown as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from cli.render import STATUS_STYLE, duration, runs_table, when

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from notifyd.models import RunStatus, TaskRunPublic, TaskStats

NEWEST = 10
FAILURES = 5


@dataclass(frozen=True)
class Frame:
    """What one refresh read."""

    stats: TaskStats
    newest: list[TaskRunPublic]
    failures: list[TaskRunPublic]
    now: datetime


def read_frame(
    conn: Connection, *, now: datetime, status: RunStatus | None, channel: str | None
) -> Frame:
    """Read one frame through the notification views (the store's summary and two pages)."""
    from notifyd.models import RunStatus
    from notifyd.notifications import views

    return Frame(
        stats=views.task_stats(conn, now=now),
        newest=views.list_runs(conn, status=status, channel=channel, limit=NEWEST).items,
        failures=views.list_runs(
            conn, status=RunStatus.failed, channel=channel, limit=FAILURES
        ).items,
        now=now,
    )


def _counts(frame: Frame, channel: str | None) -> Text:
    counts = frame.stats.by_channel.get(channel, {}) if channel else frame.stats.by_status
    line = Text.assemble(("runs", "bold"), f" ({channel})" if channel else "", ": ")
    for i, status in enumerate(STATUS_STYLE):
        if i:
            line.append("  ")
        line.append(f"{status} ", style="dim")
        line.append(str(counts.get(status, 0)), style=STATUS_STYLE[status])
    return line


def frame_view(
    frame: Frame,
    *,
    width: int,
    interval: float,
    status: RunStatus | None = None,
    channel: str | None = None,
) -> Group:
    """The whole screen: a header, the counts, the newest runs and the recent failures."""
    shown = ", ".join(
        part for part in (f"status {status}" if status else "", channel or "") if part
    )
    header = Text.assemble(
        ("notifyd tasks watch", "bold"),
        f" · {when(frame.now, zone=True)} · every {duration(interval * 1000)} · Ctrl-C to stop",
        style="",
    )
    age = frame.stats.oldest_queued_age_seconds
    waiting = Text(
        f"oldest queued run waiting {duration(age * 1000)}"
        if age is not None
        else "no queued runs",
        style="dim",
    )
    newest = runs_table(frame.newest, width=width)
    newest.title = f"newest runs{f' ({shown})' if shown else ''}"
    parts: list[RenderableType] = [header, _counts(frame, channel), waiting, newest]
    if frame.failures:
        failures = runs_table(frame.failures, width=width)
        failures.title = f"recent failures{f' ({channel})' if channel else ''}"
        parts.append(failures)
    else:
        parts.append(Text("no failed runs", style="dim"))
    return Group(*parts)
