"""``notifyd tasks``: see and steer tracked runs. Reads the configured database directly.

Here the group and the commands that read (list, show, stats, watch); the ones that change runs
(retry, cancel, prune) are in ``task_actions``."""

from typing import TYPE_CHECKING, Annotated

import typer

from cli import task_actions
from cli.choices import MAX_PAGE, Status, metavar, parse_as, time_option
from cli.common import HELP_STYLE, console, err_console, handle_errors, open_store

# The store's modules and Rich load inside the commands: `notifyd tasks <Tab>` must stay fast.
if TYPE_CHECKING:
    from notifyd.models import TaskPage

StatusFilter = Annotated[
    Status | None,
    typer.Option(help="Only runs in this state.", parser=parse_as(Status), metavar=metavar(Status)),
]

app = typer.Typer(help="List, inspect and steer tracked runs.", no_args_is_help=True, **HELP_STYLE)

PAGE = 20  # runs on one page of `tasks list`
ALL_PAGE = 100  # runs read at a time by `tasks list --all`


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
    after, before = time_option(since, "since"), time_option(until, "until")
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
    page: "TaskPage", *, total: int | None, first: bool, every: bool, as_json: bool
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


app.command("retry")(task_actions.retry_command)
app.command("cancel")(task_actions.cancel_command)
app.command("prune")(task_actions.prune_command)


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
