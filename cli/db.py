"""``notifyd db``: the store's schema."""

import typer

from cli.common import HELP_STYLE, console, handle_errors, settings_from

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True, **HELP_STYLE)


@app.command("upgrade")
@handle_errors
def upgrade_command(ctx: typer.Context) -> None:
    """Apply pending migrations (refuses a database newer than this notifyd)."""
    from rich.text import Text

    from notifyd.db import engine_for, upgrade

    settings = settings_from(ctx)
    engine = engine_for(settings)
    try:
        revision = upgrade(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    console.print(Text(f"database {url} is at revision {revision}"), highlight=False)
