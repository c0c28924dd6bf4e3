"""``notifyd secrets``: the key that encrypts stored secret recipients. Reads the database directly."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import HELP_STYLE, err_console, fail, handle_errors, open_store, settings_from

app = typer.Typer(
    help="The key that encrypts ad-hoc recipients carrying secrets (webhook and Apprise URLs).",
    no_args_is_help=True,
    **HELP_STYLE,
)


@app.command("new-key")
def new_key_command() -> None:
    """Print a new random key, for NOTIFYD_SECRET_KEY."""
    from notifyd.notifications.secretbox import new_key

    typer.echo(new_key())


@app.command("rotate")
@handle_errors
def rotate(
    ctx: typer.Context,
    new_key: Annotated[
        str | None,
        typer.Option(
            envvar="NOTIFYD_NEW_SECRET_KEY",
            help="The new key, when the current one comes from NOTIFYD_SECRET_KEY (with a key "
            "file, a new key is made and the file replaced).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-encrypt every stored secret recipient with a new key."""
    from rich.text import Text

    from notifyd.db import write_session
    from notifyd.notifications import secretbox

    settings = settings_from(ctx)
    engine = open_store(ctx, settings)
    old = secretbox.SecretBox.from_settings(settings, create=False)
    if old.path is None and new_key is None:
        raise fail(
            "the key comes from NOTIFYD_SECRET_KEY: pass --new-key (make one with `notifyd "
            "secrets new-key`), then set NOTIFYD_SECRET_KEY to it on every process"
        )
    key = new_key or secretbox.new_key()
    new = secretbox.SecretBox([key], path=old.path)
    if old.path is not None:
        # Both keys first: a process that meets a value already re-encrypted re-reads the file.
        secretbox.write_key_file(old.path, [key, *old.keys])
    with write_session(engine) as session:
        count = secretbox.reencrypt(session.connection(), old=old, new=new)
    if old.path is not None:
        secretbox.write_key_file(old.path, [key])
        where = f"the new key is in {old.path}"
    else:
        where = "now set NOTIFYD_SECRET_KEY to the new key on every process"
    err_console.print(
        Text(f"re-encrypted {count} stored secret recipient(s); {where}"), highlight=False
    )
