"""``notifyd tasks``: see and steer tracked runs. Reads the configured database directly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from cli.common import console, handle_errors, open_store, settings_from
from cli.render import print_json, run_detail, runs_table, stats_table
from notifyd import control, service
from notifyd.config import Settings
from notifyd.db import read_session, write_connection
from notifyd.errors import InvalidInput
from notifyd.models import RunStatus
from notifyd.timeutil import parse_duration, parse_since, utcnow

app = typer.Typer(help="List, inspect and steer tracked runs.", no_args_is_help=True)


def _time_option(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise InvalidInput(f"--{name}: {exc}") from None


@app.command("list")
@handle_errors
def list_runs(
    ctx: typer.Context,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this state.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only runs of this channel.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after: ISO time or a duration ago (1h, 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Created before: ISO time or a duration ago.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=service.MAX_PAGE, help="At most this many.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List runs, newest first."""
    engine = open_store(ctx)
    with read_session(engine) as session:
        page = service.list_runs(
            session=session,
            status=status,
            channel=channel,
            since=_time_option(since, "since"),
            until=_time_option(until, "until"),
            limit=limit,
        )
    if as_json:
        print_json(console, page.items)
    else:
        console.print(runs_table(page.items))


@app.command("show")
@handle_errors
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run id (run_…).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run in full: arguments and every attempt."""
    engine = open_store(ctx)
    with read_session(engine) as session:
        run = service.get_run(session=session, run_id=run_id)
    if as_json:
        print_json(console, run)
    else:
        console.print(run_detail(run))


def _max_attempts_for(settings: Settings) -> Callable[[str | None], int]:
    return lambda channel: settings.retry_policy_for(channel).max_attempts


@app.command("retry")
@handle_errors
def retry_command(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="The run to retry; omit to retry every match.")
    ] = None,
    status: Annotated[
        RunStatus | None, typer.Option(help="Bulk: retry runs in this state (failed or cancelled).")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Bulk: only this channel.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Bulk: only runs created since (1h, 7d, or ISO time).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Queue a failed or cancelled run again, now (or every run matching --status)."""
    settings = settings_from(ctx)
    engine = open_store(ctx, settings)
    now = utcnow()
    if run_id is not None:
        if status or channel or since:
            raise InvalidInput(
                "give a run id or bulk filters (--status/--channel/--since), not both"
            )
        with write_connection(engine) as conn:
            control.retry_run(
                conn, run_id=run_id, now=now, max_attempts_for=_max_attempts_for(settings)
            )
        console.print(f"run {run_id} queued again", highlight=False)
        return
    if status not in control.RETRYABLE:
        raise InvalidInput("give a run id, or --status failed|cancelled to retry in bulk")
    selection = control.RunFilter(
        status=status, channel=channel, since=_time_option(since, "since")
    )
    with engine.connect() as conn:
        count = control.count_runs(conn, selection)
    if count == 0:
        console.print(f"no {status.value} runs match; nothing to retry", highlight=False)
        return
    if not yes and not typer.confirm(f"Retry {count} {status.value} run(s)?", default=False):
        raise typer.Exit(1)
    with write_connection(engine) as conn:
        done = control.retry_runs(
            conn, selection=selection, now=now, max_attempts_for=_max_attempts_for(settings)
        )
    console.print(f"{done} run(s) queued again", highlight=False)


@app.command("cancel")
@handle_errors
def cancel_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to cancel (queued or retrying).")],
) -> None:
    """Cancel a queued or retrying run: it will not be attempted again."""
    engine = open_store(ctx)
    with write_connection(engine) as conn:
        control.cancel_run(conn, run_id=run_id, now=utcnow())
    console.print(f"run {run_id} cancelled", highlight=False)


@app.command("prune")
@handle_errors
def prune_command(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Remove finished runs that ended longer ago than this (30d, 12h).")
    ] = "30d",
) -> None:
    """Delete finished runs (and their attempts and notifications) older than --older-than."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise InvalidInput(f"--older-than: {exc}") from None
    engine = open_store(ctx)
    now = utcnow()

    def one_chunk() -> control.PruneResult:
        with write_connection(engine) as conn:
            return control.prune_chunk(conn, older_than=age, now=now)

    result = control.prune(one_chunk)
    console.print(
        f"pruned {result.runs} run(s), {result.notifications} notification(s), "
        f"{result.idempotency_records} expired idempotency key(s)",
        highlight=False,
    )


@app.command("stats")
@handle_errors
def stats_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts by status and channel, and the age of the oldest queued run."""
    engine = open_store(ctx)
    found = service.task_stats(engine=engine, now=utcnow())
    if as_json:
        print_json(console, found)
    else:
        console.print(stats_table(found))
