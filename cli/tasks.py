"""``notifyd tasks``: see and steer tracked runs. Reads the configured database directly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from cli.choices import MAX_PAGE, Status, metavar, parse_as
from cli.common import HELP_STYLE, console, err_console, handle_errors, open_store, settings_from
from notifyd.errors import InvalidInput

# The store's modules and Rich load inside the commands: `notifyd tasks <Tab>` must stay fast.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from notifyd.models import TaskPage
    from notifyd.tracking.admin import PruneResult

StatusFilter = Annotated[
    Status | None,
    typer.Option(help="Only runs in this state.", parser=parse_as(Status), metavar=metavar(Status)),
]

app = typer.Typer(help="List, inspect and steer tracked runs.", no_args_is_help=True, **HELP_STYLE)

PAGE = 20  # runs on one page of `tasks list`
ALL_PAGE = 100  # runs read at a time by `tasks list --all`


def _time_option(value: str | None, name: str) -> datetime | None:
    """A duration ago or an ISO time; a time without a zone is local, as the tables show it."""
    if value is None:
        return None
    from notifyd.timeutil import parse_since

    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        naive = None
    if naive is not None and naive.tzinfo is None:
        return naive.astimezone()
    try:
        return parse_since(value)
    except ValueError as exc:
        raise InvalidInput(f"--{name}: {exc}") from None


@app.command("list")
@handle_errors
def list_runs(
    ctx: typer.Context,
    status: StatusFilter = None,
    channel: Annotated[str | None, typer.Option(help="Only runs of this channel.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after: ISO time or a duration ago (1h, 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Created before: ISO time or a duration ago.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_PAGE,
            help=f"Runs per page (default {PAGE}; {ALL_PAGE} with --all).",
            show_default=False,
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option(
            help="Continue after this run id (the cursor a previous page ends with).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every matching run, page after page, as they are read.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array (with --all: one run per line).")
    ] = False,
) -> None:
    """List runs, newest first (times in the local zone), one page at a time."""
    from notifyd.models import RunStatus
    from notifyd.notifications import views
    from notifyd.tracking import admin

    engine = open_store(ctx)
    wanted = RunStatus(status) if status else None
    after, before = _time_option(since, "since"), _time_option(until, "until")
    size = limit or (ALL_PAGE if every else PAGE)
    while True:
        # One short read per page: a long --all never holds a read transaction open.
        with engine.connect() as conn:
            page = views.list_runs(
                conn,
                status=wanted,
                channel=channel,
                since=after,
                until=before,
                limit=size,
                cursor=cursor,
            )
            total = (
                admin.count_runs(
                    conn,
                    admin.RunFilter(
                        statuses=(wanted,) if wanted else (),
                        queue=channel,
                        since=after,
                        until=before,
                    ),
                )
                if page.next_cursor and not every
                else None
            )
        _print_page(page, total=total, first=cursor is None, every=every, as_json=as_json)
        if not every or page.next_cursor is None:
            return
        cursor = page.next_cursor


def _print_page(
    page: TaskPage, *, total: int | None, first: bool, every: bool, as_json: bool
) -> None:
    """One page: a JSON array (JSON lines with --all) or a table; then how to go on, when
    there is more (on stderr under --json, so that stdout stays one document)."""
    from rich.text import Text

    from cli.render import print_json, runs_table

    if as_json and every:
        for run in page.items:
            typer.echo(run.model_dump_json())
        return
    if as_json:
        print_json(console, page.items)
    else:
        console.print(runs_table(page.items, width=console.width))
    if every or page.next_cursor is None:
        return
    shown = len(page.items)
    counted = (
        f"{total - shown} more of {total} matching"
        if first and total is not None
        else f"more of {total} matching"
    )
    (err_console if as_json else console).print(
        Text(f"{counted}: notifyd tasks list --cursor {page.next_cursor} (or --all)"),
        highlight=False,
        soft_wrap=True,
    )


@app.command("show")
@handle_errors
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run id (run_…).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tracebacks: Annotated[
        bool,
        typer.Option(
            "--traceback", help="Show every attempt's traceback, not each distinct one once."
        ),
    ] = False,
) -> None:
    """Show one run in full: arguments and every attempt."""
    from cli.render import print_json, run_detail
    from notifyd.notifications import views

    engine = open_store(ctx)
    with engine.connect() as conn:
        run = views.get_run(conn, run_id=run_id)
    if as_json:
        print_json(console, run)
    else:
        console.print(run_detail(run, every_traceback=tracebacks))


@app.command("retry")
@handle_errors
def retry_command(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="The run to retry; omit to retry every match.")
    ] = None,
    status: Annotated[
        Status | None,
        typer.Option(
            help="Bulk: retry runs in this state (failed, cancelled or retrying).",
            parser=parse_as(Status),
            metavar=metavar(Status),
        ),
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Bulk: only this channel.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Bulk: only runs created since (1h, 7d, or ISO time).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Run a run again now: a failed or cancelled one with a fresh retry budget, a retrying one
    at once instead of at its scheduled time, its attempts and budget as they are (or every run
    matching --status)."""
    from rich.text import Text

    from notifyd.db import write_connection
    from notifyd.models import RunStatus
    from notifyd.policy import retry_policies
    from notifyd.timeutil import utcnow
    from notifyd.tracking import admin

    settings = settings_from(ctx)
    engine = open_store(ctx, settings)
    policies = retry_policies(settings)
    now = utcnow()
    if run_id is not None:
        if status or channel or since:
            raise InvalidInput(
                "give a run id or bulk filters (--status/--channel/--since), not both"
            )
        with write_connection(engine) as conn:
            found = admin.find_run(conn, run_id)
            admin.retry_run(conn, run_id=run_id, now=now, policies=policies)
        hurried = found is not None and found.status == RunStatus.retrying
        console.print(
            Text(
                f"run {run_id} queued to run now (was retrying; its attempts are unchanged)"
                if hurried
                else f"run {run_id} queued again with a fresh retry budget"
            ),
            highlight=False,
            soft_wrap=True,
        )
        return
    if status is None or RunStatus(status) not in admin.RETRYABLE:
        raise InvalidInput("give a run id, or --status failed|cancelled|retrying to retry in bulk")
    selection = admin.RunFilter(
        statuses=(RunStatus(status),), queue=channel, since=_time_option(since, "since")
    )
    with engine.connect() as conn:
        count = admin.count_runs(conn, selection)
    if count == 0:
        console.print(f"no {status.value} runs match; nothing to retry", highlight=False)
        return
    if not yes and not typer.confirm(f"Retry {count} {status.value} run(s)?", default=False):
        raise typer.Exit(1)
    with write_connection(engine) as conn:
        done = admin.retry_runs(conn, selection=selection, now=now, policies=policies)
    console.print(f"{done} run(s) queued again", highlight=False)


@app.command("cancel")
@handle_errors
def cancel_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to cancel (queued or retrying).")],
) -> None:
    """Cancel a queued or retrying run: it will not be attempted again."""
    from rich.text import Text

    from notifyd.db import write_connection
    from notifyd.timeutil import utcnow
    from notifyd.tracking import admin

    engine = open_store(ctx)
    with write_connection(engine) as conn:
        admin.cancel_run(conn, run_id=run_id, now=utcnow())
    console.print(Text(f"run {run_id} cancelled"), highlight=False)


@app.command("prune")
@handle_errors
def prune_command(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Remove finished runs that ended longer ago than this (30d, 12h).")
    ] = "30d",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete finished runs (and their attempts and notifications) older than --older-than."""
    from rich.text import Text

    from notifyd.db import write_connection
    from notifyd.notifications import retention
    from notifyd.timeutil import parse_duration, utcnow
    from notifyd.tracking import admin

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise InvalidInput(f"--older-than: {exc}") from None
    engine = open_store(ctx)
    now = utcnow()

    def one_chunk() -> PruneResult:
        with write_connection(engine) as conn:
            return retention.prune_chunk(conn, older_than=age, now=now)

    counted = _count_prunable(engine, age=age, now=now)
    if counted.total == 0:
        console.print(Text(f"nothing older than {older_than} to prune"), highlight=False)
        return
    if dry_run:
        console.print(Text(f"would prune {_pruned(counted)}"), highlight=False)
        return
    if not yes and not typer.confirm(f"Delete {_pruned(counted)}?", default=False):
        raise typer.Exit(1)
    result = admin.prune(one_chunk)
    console.print(Text(f"pruned {_pruned(result)}"), highlight=False)


def _pruned(result: PruneResult) -> str:
    return (
        f"{result.runs} run(s), {result.extra.get('notifications', 0)} notification(s), "
        f"{result.extra.get('idempotency_records', 0)} expired idempotency key(s)"
    )


def _count_prunable(engine: Engine, *, age: timedelta, now: datetime) -> PruneResult:
    """What a prune would delete, counted with reads: a running server's writes go on."""
    from notifyd.notifications import retention

    with engine.connect() as conn:
        return retention.count_prunable(conn, older_than=age, now=now)


@app.command("stats")
@handle_errors
def stats_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts by status and channel, and the age of the oldest queued run."""
    from cli.render import print_json, stats_table
    from notifyd.notifications import views
    from notifyd.timeutil import utcnow

    engine = open_store(ctx)
    with engine.connect() as conn:
        found = views.task_stats(conn, now=utcnow())
    if as_json:
        print_json(console, found)
    else:
        console.print(stats_table(found))


@app.command("watch")
@handle_errors
def watch_command(
    ctx: typer.Context,
    status: StatusFilter = None,
    channel: Annotated[str | None, typer.Option(help="Only runs of this channel.")] = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """A live view of runs (counts by status, newest runs, recent failures) until Ctrl-C."""
    import time

    from rich.console import Console, Group
    from rich.live import Live

    from cli.watch import frame_view, read_frame
    from notifyd.models import RunStatus
    from notifyd.timeutil import utcnow

    engine = open_store(ctx)
    wanted = RunStatus(status) if status else None
    screen = Console(highlight=False)  # made now: its width is the terminal's (or COLUMNS) now

    def frame() -> Group:
        with engine.connect() as conn:
            found = read_frame(conn, now=utcnow(), status=wanted, channel=channel)
        return frame_view(
            found, width=screen.width, interval=interval, status=wanted, channel=channel
        )

    if once:
        screen.print(frame())
        return
    try:
        with Live(frame(), console=screen, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        pass
