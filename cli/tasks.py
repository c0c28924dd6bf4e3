"""``notifyd tasks``: see and steer tracked runs. Reads the configured database directly."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from cli.common import console, handle_errors, open_store, settings_from
from cli.render import print_json, run_detail, runs_table
from notifyd import service
from notifyd.db import read_session
from notifyd.errors import InvalidInput
from notifyd.models import RunStatus
from notifyd.timeutil import parse_since

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
    engine = open_store(settings_from(ctx))
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
    engine = open_store(settings_from(ctx))
    with read_session(engine) as session:
        run = service.get_run(session=session, run_id=run_id)
    if as_json:
        print_json(console, run)
    else:
        console.print(run_detail(run))
