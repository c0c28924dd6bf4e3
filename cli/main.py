"""The ``notifyd`` command: serve, send, worker, and the ``tasks`` and ``db`` groups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import db as db_commands
from cli import destinations as destination_commands
from cli import tasks as task_commands
from cli import tokens as token_commands
from cli.common import console, db_url_from_option, handle_errors, settings_from
from cli.render import print_json
from notifyd import __version__
from notifyd.client import NotifydClient
from notifyd.errors import ClientError, InvalidInput
from notifyd.models import FINISHED_STATUSES

app = typer.Typer(
    help="notifyd: a self-hosted notification server that never loses what it accepted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(task_commands.app, name="tasks")
app.add_typer(db_commands.app, name="db")
app.add_typer(token_commands.app, name="tokens")
app.add_typer(destination_commands.app, name="destinations")


def _version(value: bool) -> None:
    if value:
        console.print(f"notifyd {__version__}", highlight=False)
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


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO; webhook URLs may carry tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)


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
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Allow a non-loopback bind with no API tokens: anyone who reaches it can use it.",
        ),
    ] = False,
) -> None:
    """Migrate the database, then serve the API and deliver in the background."""
    import uvicorn

    from notifyd.api.app import create_app
    from notifyd.auth import check_bind
    from notifyd.db import upgrade
    from notifyd.runtime import build_runtime

    settings = settings_from(
        ctx,
        host=host,
        port=port,
        database_url=db_url_from_option(db),
        insecure_no_auth=insecure_no_auth or None,
    )
    _configure_logging(log_level)
    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)
    upgrade(runtime.engine)
    auth_mode = check_bind(
        host=settings.host, insecure_no_auth=settings.insecure_no_auth, engine=runtime.engine
    )
    app_ = create_app(settings, runtime=runtime)
    logging.getLogger("notifyd").info(
        "notifyd %s serving on http://%s:%d (store: %s; %s)",
        __version__,
        settings.host,
        settings.port,
        runtime.engine.url.render_as_string(hide_password=True),
        auth_mode,
    )
    uvicorn.run(
        app_,
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
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Deliver queued runs without serving HTTP (scale out beside `serve` on PostgreSQL)."""
    from notifyd.worker import run_worker

    settings = settings_from(ctx, database_url=db_url_from_option(db))
    _configure_logging(log_level)
    asyncio.run(run_worker(settings))


def _parse_data(data: str | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("--data must be a JSON object")
    return value


@app.command()
@handle_errors
def send(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="The message body.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", "-t", help="A recipient; repeat for more.")
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option("--destination", "-d", help="A destination configured on the server."),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="The subject.")] = None,
    channel: Annotated[str | None, typer.Option(help="log, email, webhook, apprise, …")] = None,
    data: Annotated[str | None, typer.Option(help="Extra data: a JSON object.")] = None,
    server: Annotated[
        str | None, typer.Option(help="Server URL.", show_default="the configured server")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Send at most once per key (kept 24 h).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the runs until they end.")] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up after this many seconds.")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """Send a notification through the API (a quick way to test a server)."""
    if not to and destination is None:
        raise InvalidInput("give --to (recipients) or --destination (a configured name)")
    settings = settings_from(ctx, server_url=server)
    token = settings.token.get_secret_value() if settings.token else None
    with NotifydClient(settings.base_url, token=token) as client:
        accepted = client.send(
            to=to,
            message=message,
            subject=subject,
            channel=channel,
            destination=destination,
            data=_parse_data(data),
            idempotency_key=idempotency_key,
        )
        replayed = accepted.pop("replayed", False)
        if wait:
            final = _follow(client, [t["id"] for t in accepted["tasks"]], timeout, quiet=as_json)
            accepted["tasks"] = [
                {**t, "status": final[t["id"]]["status"], "error": final[t["id"]].get("last_error")}
                for t in accepted["tasks"]
            ]
    if as_json:
        print_json(console, accepted)
    else:
        note = " (replayed: already sent with this idempotency key)" if replayed else ""
        console.print(f"notification [bold]{accepted['id']}[/] accepted{note}", highlight=False)
        for t in accepted["tasks"]:
            error = f"  {t['error']}" if t.get("error") else ""
            console.print(f"  task {t['id']}  {t['to']}  {t['status']}{error}", highlight=False)
    if wait and any(t["status"] != "succeeded" for t in accepted["tasks"]):
        raise typer.Exit(1)


def _follow(
    client: NotifydClient, run_ids: list[str], timeout: float, *, quiet: bool
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    latest: dict[str, dict[str, Any]] = {}
    finished = {status.value for status in FINISHED_STATUSES}
    with console.status("waiting for delivery…") if not quiet else contextlib.nullcontext():
        while True:
            for run_id in run_ids:
                if latest.get(run_id, {}).get("status") not in finished:
                    latest[run_id] = client.task(run_id)
            if all(run["status"] in finished for run in latest.values()):
                return latest
            if time.monotonic() > deadline:
                states = ", ".join(f"{r['id']}: {r['status']}" for r in latest.values())
                raise ClientError(f"gave up waiting after {timeout:.0f}s ({states})")
            time.sleep(0.2)


if __name__ == "__main__":  # pragma: no cover
    app()
