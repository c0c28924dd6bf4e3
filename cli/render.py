"""Rich tables and JSON for the CLI's output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# Every piece of data goes into a Text (never into a markup string): recipients, subjects,
# token names and peers' answers may hold `[/x]` or `[red]`, and must be shown as they are.
if TYPE_CHECKING:
    from pydantic import BaseModel

    from notifyd.models import NotificationPublic, TaskRunDetail, TaskRunPublic, TaskStats

STATUS_STYLE = {
    "queued": "cyan",
    "running": "blue",
    "succeeded": "green",
    "retrying": "yellow",
    "failed": "red",
    "cancelled": "dim",
}
# Below this width `tasks list` stacks secondary values under the primary ones.
WIDE_TABLE = 120


def print_json(console: Console, value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Print models (or a dict) as JSON, for scripts."""
    if isinstance(value, dict):
        data: Any = value
    elif isinstance(value, Sequence):
        data = [item.model_dump(mode="json") for item in value]
    else:
        data = value.model_dump(mode="json")
    console.print_json(json.dumps(data))


def local_zone() -> str:
    """The local time zone's name, as the tables' times are shown in it (``CET``, ``UTC``)."""
    return datetime.now().astimezone().strftime("%Z") or "local"


def zone_header(name: str) -> str:
    """A time column's header naming the zone: ``created (CET)``."""
    return f"{name} ({local_zone()})"


def when(value: datetime | None, *, compact: bool = False, zone: bool = False) -> str:
    """A local, second-precision timestamp (``compact`` drops the year; ``zone`` names it)."""
    if value is None:
        return "-"
    local = value.astimezone()
    shown = local.strftime("%m-%d %H:%M:%S" if compact else "%Y-%m-%d %H:%M:%S")
    return f"{shown} {local.strftime('%Z')}" if zone else shown


def duration(ms: float | None) -> str:
    """``850ms``, ``2.4s``, ``3m05s``, ``2h10m``: compact, for tables at 80 columns."""
    from notifyd.timeutil import describe_ms

    return "-" if ms is None else describe_ms(ms, sep="")


def relative(value: datetime | None) -> str:
    """``in 4m12s`` / ``now`` for a future time."""
    if value is None:
        return "-"
    seconds = (value - datetime.now(UTC)).total_seconds()
    if seconds <= 0:
        return "now"
    return f"in {duration(seconds * 1000)}"


def status_text(status: str) -> Text:
    """A status in its colour."""
    return Text(str(status), style=STATUS_STYLE.get(str(status), ""))


def short(text: str | None, width: int = 60) -> str:
    """The first line of ``text``, cut to ``width``."""
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


def runs_table(runs: Sequence[TaskRunPublic], *, width: int = WIDE_TABLE) -> Table:
    """The ``tasks list`` table, newest first. Narrower than ``WIDE_TABLE``, each row stacks
    its secondary values (created, attempts, channel) under the primary ones, so that at 80
    columns the id stays whole and the recipient and error are still shown."""
    title = f"{len(runs)} run(s), newest first; times in {local_zone()}"
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    id_width = max((len(run.id) for run in runs), default=2)
    table.add_column("id", no_wrap=True, min_width=id_width)
    table.add_column("status", no_wrap=True, min_width=9)
    if width >= WIDE_TABLE:
        table.add_column("channel", no_wrap=True, min_width=7)
    table.add_column("recipient", overflow="fold", min_width=10, ratio=1)
    if width >= WIDE_TABLE:
        table.add_column("attempts", no_wrap=True, min_width=5)
        table.add_column("created", no_wrap=True, min_width=14)
        table.add_column("duration", no_wrap=True, min_width=6)
    table.add_column("next / error", overflow="fold", min_width=10, ratio=2)
    for run in runs:
        note = (
            f"next {relative(run.next_attempt_at)}: {short(run.last_error, 40)}"
            if run.status == "retrying"
            else f"due {relative(run.next_attempt_at)}"
            if run.scheduled
            else short(run.last_error)
        )
        shown = "scheduled" if run.scheduled else run.status
        attempts = f"{run.attempts}/{run.max_attempts}"
        if width >= WIDE_TABLE:
            table.add_row(
                Text(run.id),
                status_text(shown),
                Text(run.channel or "-"),
                Text(run.recipient or "-"),
                attempts,
                when(run.created_at, compact=True),
                duration(run.duration_ms),
                Text(note),
            )
        else:
            table.add_row(
                Text.assemble(run.id, "\n", (when(run.created_at, compact=True), "dim")),
                Text.assemble(
                    status_text(shown),
                    "\n",
                    (f"{attempts} {duration(run.duration_ms)}", "dim"),
                ),
                Text.assemble(run.recipient or "-", "\n", (run.channel or "-", "dim")),
                Text(note),
            )
    return table


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def run_detail(run: TaskRunDetail, *, every_traceback: bool = False) -> Group:
    """The ``tasks show`` view: the run, its arguments and every attempt. A traceback is shown
    once, on the first attempt that raised it, unless ``every_traceback``."""
    head = _grid()
    head.add_row("id", Text(run.id))
    head.add_row("status", status_text("scheduled" if run.scheduled else run.status))
    head.add_row("task", Text(run.task_name))
    if run.notification_id:
        head.add_row("notification", Text(run.notification_id))
    head.add_row("channel", Text(run.channel or "-"))
    head.add_row("recipient", Text(run.recipient or "-"))
    head.add_row("attempts", f"{run.attempts} of {run.max_attempts}")
    head.add_row("created", when(run.created_at, zone=True))
    head.add_row("started", when(run.started_at, zone=True))
    head.add_row("finished", when(run.finished_at, zone=True))
    head.add_row("duration", duration(run.duration_ms))
    if run.status == "retrying" or run.scheduled:
        head.add_row(
            "due" if run.scheduled else "next attempt",
            f"{when(run.next_attempt_at, zone=True)} ({relative(run.next_attempt_at)})",
        )
    if run.last_error:
        head.add_row("last error", Text(run.last_error, style="red"))
    head.add_row("arguments", Text(json.dumps(run.args, indent=2, ensure_ascii=False)))
    parts: list[Any] = [Panel(head, title=Text(f"run {run.id}"), title_align="left")]
    shown: dict[str, int] = {}  # traceback -> the attempt that showed it
    for attempt in run.attempts_detail:
        body = _grid()
        body.add_row("outcome", Text(str(attempt.outcome)))
        body.add_row("worker", Text(attempt.worker or "-"))
        body.add_row("started", when(attempt.started_at, zone=True))
        body.add_row("ended", when(attempt.finished_at, zone=True))
        body.add_row("duration", duration(attempt.duration_ms))
        if attempt.retry_delay_seconds is not None:
            body.add_row("retry after", duration(attempt.retry_delay_seconds * 1000))
        if attempt.error_type or attempt.error_message:
            body.add_row(
                "error", Text(f"{attempt.error_type}: {attempt.error_message}", style="red")
            )
        if attempt.response:
            body.add_row("response", Text(json.dumps(attempt.response, ensure_ascii=False)))
        if attempt.traceback:
            trace = attempt.traceback.rstrip()
            if trace in shown and not every_traceback:
                body.add_row(
                    "traceback", Text(f"as in attempt {shown[trace]} (--traceback)", style="dim")
                )
            else:
                shown.setdefault(trace, attempt.number)
                body.add_row("traceback", Text(trace, style="dim"))
        parts.append(Panel(body, title=f"attempt {attempt.number}", title_align="left"))
    if not run.attempts_detail:
        parts.append(Text("no attempts yet", style="dim"))
    return Group(*parts)


def notification_detail(note: NotificationPublic) -> Group:
    """The ``notifications show`` view: what was sent, to whom, and each run's state."""
    head = _grid()
    head.add_row("id", Text(note.id))
    head.add_row("status", Text(note.status, style=_NOTE_STYLE.get(note.status, "")))
    head.add_row("channel", Text(note.channel))
    if note.destination:
        head.add_row("destination", Text(note.destination))
    head.add_row("to", Text("\n".join(note.to) or "-"))
    head.add_row("created", when(note.created_at, zone=True))
    if note.send_at is not None:
        head.add_row("send at", when(note.send_at, zone=True))
    head.add_row("subject", Text(note.subject or "-"))
    head.add_row("message", Text(note.message))
    if note.data:
        head.add_row("data", Text(json.dumps(note.data, indent=2, ensure_ascii=False)))
    runs = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    runs.add_column("run", no_wrap=True, min_width=max((len(t.id) for t in note.tasks), default=3))
    runs.add_column("status", no_wrap=True, min_width=9)
    runs.add_column("recipient", overflow="fold", ratio=1)
    for task in note.tasks:
        runs.add_row(Text(task.id), status_text(task.status), Text(task.to or "-"))
    return Group(
        Panel(head, title=Text(f"notification {note.id}"), title_align="left"),
        runs if note.tasks else Text("no runs", style="dim"),
    )


_NOTE_STYLE = {"delivered": "green", "failed": "red", "partial": "yellow", "cancelled": "dim"}


def stats_table(stats: TaskStats) -> Group:
    """The ``tasks stats`` view. Headers are never abbreviated: the counts fold first."""
    statuses = list(STATUS_STYLE)
    table = Table(
        box=box.SIMPLE_HEAD,
        title="runs by channel and status",
        title_justify="left",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("channel", overflow="fold", min_width=7)
    for status in statuses:
        table.add_column(
            status, justify="right", style=STATUS_STYLE[status], no_wrap=True, min_width=len(status)
        )
    for channel, counts in sorted(stats.by_channel.items()):
        table.add_row(Text(channel), *(str(counts.get(s, 0)) for s in statuses))
    table.add_row(
        Text("all", style="bold"),
        *(Text(str(stats.by_status.get(s, 0)), style="bold") for s in statuses),
    )
    age = stats.oldest_queued_age_seconds
    oldest = (
        f"oldest queued run: created {when(stats.oldest_queued_at, zone=True)}, "
        f"waiting {duration(age * 1000)}"
        if age is not None
        else "no queued runs"
    )
    return Group(table, Text(oldest))
