"""``notifyd notifications``: what was sent and how each of its runs is doing. Reads the database."""

from typing import Annotated

import typer

from cli.common import HELP_STYLE, console, handle_errors, open_store

app = typer.Typer(help="Inspect notifications.", no_args_is_help=True, **HELP_STYLE)


@app.command("show")
@handle_errors
def show_notification(
    ctx: typer.Context,
    notification_id: Annotated[str, typer.Argument(help="The notification id (ntf_…).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a notification: its message, recipients (masked) and each run's state."""
    from cli.render import notification_detail, print_json
    from notifyd.notifications import views

    engine = open_store(ctx)
    with engine.connect() as conn:
        note = views.get_notification(conn, notification_id=notification_id)
    if as_json:
        print_json(console, note)
    else:
        console.print(notification_detail(note))
