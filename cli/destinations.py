"""``notifyd destinations``: the named destinations in the configuration (no server needed)."""

import json
from typing import Annotated, Any

import typer

from cli.common import HELP_STYLE, console, handle_errors, settings_from

app = typer.Typer(
    help="The named destinations clients can send to.", no_args_is_help=True, **HELP_STYLE
)


@app.command("list")
@handle_errors
def list_destinations(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Check the configured destinations and list them (recipients and secrets are not shown)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from notifyd.channels.registry import build_channels
    from notifyd.notifications.destinations import Destinations

    settings = settings_from(ctx)
    checked = Destinations.from_settings(settings, build_channels(settings))
    rows: list[dict[str, Any]] = [
        {
            "name": public.name,
            "channel": public.channel,
            "recipients": len(checked.get(public.name).recipients),
            "description": settings.destinations[public.name].description,
        }
        for public in checked.public()
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(
            Text("no destinations are configured (add [destinations.<name>] to the config)")
        )
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "channel", "recipients", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            Text(row["name"]),
            Text(row["channel"]),
            str(row["recipients"]),
            Text(row["description"] or ""),
        )
    console.print(table)
