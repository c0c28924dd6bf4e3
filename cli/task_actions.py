"""``notifyd tasks retry``, ``cancel`` and ``prune``: the commands that change runs. Registered
on the ``tasks`` group by ``cli.tasks``; they write the configured database directly."""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from cli.choices import Status, metavar, parse_as, time_option
from cli.common import console, handle_errors, open_store, settings_from
from notifyd.errors import InvalidInput

# The store's modules and Rich load inside the commands: `notifyd tasks <Tab>` must stay fast.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from notifyd.tracking.admin import PruneResult


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
        statuses=(RunStatus(status),), queue=channel, since=time_option(since, "since")
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

    def one_chunk() -> "PruneResult":
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


def _pruned(result: "PruneResult") -> str:
    return (
        f"{result.runs} run(s), {result.extra.get('notifications', 0)} notification(s), "
        f"{result.extra.get('idempotency_records', 0)} expired idempotency key(s)"
    )


def _count_prunable(engine: "Engine", *, age: timedelta, now: datetime) -> "PruneResult":
    """What a prune would delete, counted with reads: a running server's writes go on."""
    from notifyd.notifications import retention

    with engine.connect() as conn:
        return retention.count_prunable(conn, older_than=age, now=now)
