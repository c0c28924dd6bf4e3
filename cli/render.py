"""Rich tables and JSON for the CLI's output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from notifyd.models import RunStatus, TaskRunDetail, TaskRunPublic, TaskStats
from notifyd.timeutil import utcnow

STATUS_STYLE = {
    RunStatus.queued: "cyan",
    RunStatus.running: "blue",
    RunStatus.succeeded: "green",
    RunStatus.retrying: "yellow",
    RunStatus.failed: "red",
    RunStatus.cancelled: "dim",
}


def print_json(console: Console, value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Print models (or a dict) as JSON, for scripts."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    console.print_json(json.dumps(data))


def when(value: datetime | None, *, compact: bool = False) -> str:
    """A local, second-precision timestamp (``compact`` drops the year)."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%m-%d %H:%M:%S" if compact else "%Y-%m-%d %H:%M:%S")


def duration(ms: float | None) -> str:
    """``850ms``, ``2.4s``, ``3m05s``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def relative(value: datetime | None) -> str:
    """``in 4m12s`` / ``now`` for a future time."""
    if value is None:
        return "-"
    seconds = (value - utcnow()).total_seconds()
    if seconds <= 0:
        return "now"
    return f"in {duration(seconds * 1000)}"


def status_text(status: RunStatus) -> Text:
    """A status in its colour."""
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def short(text: str | None, width: int = 60) -> str:
    """The first line of ``text``, cut to ``width``."""
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


def runs_table(runs: Sequence[TaskRunPublic]) -> Table:
    """The ``tasks list`` table, newest first."""
    table = Table(
        title=f"{len(runs)} run(s), newest first", title_justify="left", box=box.SIMPLE_HEAD
    )
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("channel", no_wrap=True, min_width=7)
    table.add_column("recipient", overflow="fold", min_width=12)
    table.add_column("attempts", no_wrap=True, min_width=5)
    table.add_column("created", no_wrap=True, min_width=14)
    table.add_column("duration", no_wrap=True, min_width=6)
    table.add_column("next / error", overflow="fold", min_width=10)
    for run in runs:
        note = (
            f"next {relative(run.next_attempt_at)}: {short(run.last_error, 40)}"
            if run.status == RunStatus.retrying
            else short(run.last_error)
        )
        table.add_row(
            run.id,
            status_text(run.status),
            run.channel or "-",
            run.recipient or "-",
            f"{run.attempts}/{run.max_attempts}",
            when(run.created_at, compact=True),
            duration(run.duration_ms),
            note,
        )
    return table


def run_detail(run: TaskRunDetail) -> Group:
    """The ``tasks show`` view: the run, its arguments and every attempt."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("id", run.id)
    head.add_row("status", status_text(run.status))
    head.add_row("task", run.task_name)
    if run.notification_id:
        head.add_row("notification", run.notification_id)
    head.add_row("channel", run.channel or "-")
    head.add_row("recipient", run.recipient or "-")
    head.add_row("attempts", f"{run.attempts} of {run.max_attempts}")
    head.add_row("created", when(run.created_at))
    head.add_row("started", when(run.started_at))
    head.add_row("finished", when(run.finished_at))
    head.add_row("duration", duration(run.duration_ms))
    if run.status == RunStatus.retrying:
        head.add_row(
            "next attempt", f"{when(run.next_attempt_at)} ({relative(run.next_attempt_at)})"
        )
    if run.last_error:
        head.add_row("last error", Text(run.last_error, style="red"))
    head.add_row("arguments", json.dumps(run.args, indent=2, ensure_ascii=False))
    parts: list[Any] = [Panel(head, title=f"run {run.id}", title_align="left")]
    for attempt in run.attempts_detail:
        body = Table.grid(padding=(0, 2))
        body.add_column(style="bold")
        body.add_column()
        body.add_row("outcome", attempt.outcome.value)
        body.add_row("worker", attempt.worker or "-")
        body.add_row("started", when(attempt.started_at))
        body.add_row("ended", when(attempt.finished_at))
        body.add_row("duration", duration(attempt.duration_ms))
        if attempt.retry_delay_seconds is not None:
            body.add_row("retry after", duration(attempt.retry_delay_seconds * 1000))
        if attempt.error_type or attempt.error_message:
            body.add_row(
                "error", Text(f"{attempt.error_type}: {attempt.error_message}", style="red")
            )
        if attempt.response:
            body.add_row("response", json.dumps(attempt.response, ensure_ascii=False))
        if attempt.traceback:
            body.add_row("traceback", Text(attempt.traceback.rstrip(), style="dim"))
        parts.append(Panel(body, title=f"attempt {attempt.number}", title_align="left"))
    if not run.attempts_detail:
        parts.append(Text("no attempts yet", style="dim"))
    return Group(*parts)


def stats_table(stats: TaskStats) -> Group:
    """The ``tasks stats`` view."""
    statuses = [s.value for s in RunStatus]
    table = Table(box=box.SIMPLE_HEAD, title="runs by channel and status", title_justify="left")
    table.add_column("channel")
    for status in statuses:
        table.add_column(status, justify="right", style=STATUS_STYLE[RunStatus(status)])
    for channel, counts in sorted(stats.by_channel.items()):
        table.add_row(channel, *(str(counts.get(s, 0)) for s in statuses))
    table.add_row("[bold]all[/]", *(f"[bold]{stats.by_status.get(s, 0)}[/]" for s in statuses))
    age = stats.oldest_queued_age_seconds
    oldest = (
        f"oldest queued run: created {when(stats.oldest_queued_at)}, waiting {duration(age * 1000)}"
        if age is not None
        else "no queued runs"
    )
    return Group(table, Text(oldest))
