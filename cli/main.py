"""The ``notifyd`` command: serve, send, worker, and the ``tasks``, ``notifications``, ``db``,
``tokens`` and ``destinations`` groups."""

from pathlib import Path
from typing import Annotated

import typer

from cli import db as db_commands
from cli import destinations as destination_commands
from cli import notifications as notification_commands
from cli import secrets as secret_commands
from cli import tasks as task_commands
from cli import tokens as token_commands
from cli.choices import LogFormat, metavar, parse_as
from cli.common import HELP_STYLE, db_url_from_option, handle_errors, settings_from
from cli.send import send
from cli.subscribe import subscribe
from notifyd import __version__

app = typer.Typer(
    help="notifyd: a self-hosted notification server that never loses what it accepted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    **HELP_STYLE,
)
app.add_typer(task_commands.app, name="tasks")
app.add_typer(db_commands.app, name="db")
app.add_typer(token_commands.app, name="tokens")
app.add_typer(destination_commands.app, name="destinations")
app.add_typer(notification_commands.app, name="notifications")
app.add_typer(secret_commands.app, name="secrets")
app.command()(send)
app.command()(subscribe)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"notifyd {__version__}")  # no Rich: --version stays a bare start
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(envvar="NOTIFYD_CONFIG", help="TOML config file.", show_default=False),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL, or the path of a SQLite file.", show_default=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """notifyd: accept notifications at once, deliver them durably, see every run."""
    ctx.obj = {"config": config, "database_url": db_url_from_option(db)}


LogLevel = Annotated[str, typer.Option(help="debug, info, warning or error.")]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        help="text, or json: one JSON object per line, for log shippers.",
        parser=parse_as(LogFormat),
        metavar=metavar(LogFormat),
    ),
]


@app.command()
@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind.", show_default="127.0.0.1")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.", show_default="8000")] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL, or the path of a SQLite file.", show_default=False),
    ] = None,
    log_level: LogLevel = "info",
    log_format: LogFormatOption = LogFormat.text,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Allow a non-loopback bind with no API tokens: anyone who reaches it can use it.",
        ),
    ] = False,
) -> None:
    """Migrate the database, then serve the API and deliver in the background."""
    from cli.logs import configure_logging
    from notifyd.api.app import create_app
    from notifyd.api.server import serve as serve_app
    from notifyd.db import upgrade
    from notifyd.runtime import build_runtime
    from notifyd.tokens import check_bind

    settings = settings_from(
        ctx,
        host=host,
        port=port,
        database_url=db_url_from_option(db),
        insecure_no_auth=insecure_no_auth or None,
    )
    configure_logging(log_level, log_format)
    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)
    upgrade(runtime.engine)
    auth_mode = check_bind(
        host=settings.host, insecure_no_auth=settings.insecure_no_auth, engine=runtime.engine
    )
    app_ = create_app(settings, runtime=runtime)
    import logging

    logging.getLogger("notifyd").info(
        "notifyd %s serving on http://%s:%d (store: %s; %s)",
        __version__,
        settings.host,
        settings.port,
        runtime.engine.url.render_as_string(hide_password=True),
        auth_mode,
    )
    serve_app(
        app_,
        runtime,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=settings.access_log,
        timeout_graceful_shutdown=max(int(settings.grace_seconds), 1),
        log_config=None,
    )


@app.command()
@handle_errors
def worker(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL, or the path of a SQLite file.", show_default=False),
    ] = None,
    log_level: LogLevel = "info",
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Deliver queued runs without serving HTTP (scale out beside `serve` on PostgreSQL)."""
    import asyncio

    from cli.logs import configure_logging
    from notifyd.worker import run_worker

    settings = settings_from(ctx, database_url=db_url_from_option(db))
    configure_logging(log_level, log_format)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":  # pragma: no cover
    app()
