"""``notifyd secrets``: the key that encrypts stored secret recipients. Reads the database directly."""

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
    settle: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to wait for values encrypted just before the new key appeared to be "
            "committed, before the old keys are retired.",
        ),
    ] = 5.0,
) -> None:
    """Re-encrypt every stored secret recipient with a new key, safely while servers run.

    With a key file, the new key is put first in it (every server encrypts with it from then
    on), every stored value is re-encrypted, and the old keys are retired once no stored value
    needs them. With NOTIFYD_SECRET_KEY, pass --new-key, or set NOTIFYD_SECRET_KEY to "new,old"
    on every process first and run this without --new-key to finish.
    """
    from rich.text import Text

    from notifyd.notifications import keyring, secretbox

    settings = settings_from(ctx)
    engine = open_store(ctx, settings)
    current = secretbox.SecretBox.from_settings(settings, create=False)
    if current.path is None and new_key is None and len(current.keys) < 2:
        raise fail(
            "the key comes from NOTIFYD_SECRET_KEY: pass --new-key (make one with `notifyd "
            'secrets new-key`), or set NOTIFYD_SECRET_KEY to "new,old" on every process first'
        )
    if current.path is not None and new_key is None:
        new_key = secretbox.new_key()
    if new_key is not None:
        secretbox.SecretBox([new_key])  # a malformed key is refused before anything is written
    done = keyring.rotate(engine, current, key=new_key, settle=settle)
    lines = [f"re-encrypted {done.rewritten} stored secret recipient(s) with key {done.key_id}"]
    if current.path is not None:
        lines.append(f"the new key is in {current.path}; retired: {', '.join(done.retired) or '-'}")
    else:
        lines.append(
            f"set NOTIFYD_SECRET_KEY to the new key alone on every process (no stored value "
            f"needs {', '.join(done.retired) or 'another key'}); until then, a run a process "
            "cannot decrypt waits for one that can"
        )
    if done.unreadable:
        lines.append(
            f"{done.unreadable} stored value(s) were encrypted with a key none of these is: "
            "left as they were (restore that key, or `notifyd secrets reset`)"
        )
    for line in lines:
        err_console.print(Text(line), highlight=False)


@app.command("reset")
@handle_errors
def reset(
    ctx: typer.Context,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the runs whose key is lost are cancelled.")
    ] = False,
) -> None:
    """Start over after the key file is lost: make a new key and cancel the runs still to
    deliver whose recipients no key can decrypt (they are kept, as cancelled)."""
    from rich.text import Text

    from notifyd.notifications import keyring
    from notifyd.timeutil import utcnow

    if not yes:
        raise fail("this cancels every pending run whose secret key is lost: pass --yes")
    settings = settings_from(ctx)
    engine = open_store(ctx, settings)
    box, cancelled = keyring.reset(settings, engine, now=utcnow())
    where = box.path or "NOTIFYD_SECRET_KEY"
    err_console.print(
        Text(f"cancelled {cancelled} run(s) whose recipient no key opens; key: {where}"),
        highlight=False,
    )
