"""``notifyd tokens``: create, list and revoke API tokens. Reads and writes the database directly."""

from typing import TYPE_CHECKING, Annotated

import typer

from cli.choices import TokenScope, metavar, parse_as
from cli.common import HELP_STYLE, console, err_console, handle_errors, open_store, settings_from

# Rich and the renderers load inside the commands: `notifyd tokens --help` stays fast.
if TYPE_CHECKING:
    from rich.table import Table

    from notifyd.tokens import TokenPublic

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True, **HELP_STYLE)


@app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name, e.g. the client that will use it.")],
    scope: Annotated[
        TokenScope,
        typer.Option(
            help="send: post (and read its own); read: read all; admin: all.",
            parser=parse_as(TokenScope),
            metavar=metavar(TokenScope),
        ),
    ] = TokenScope.send,
    destination: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Bind it to a configured destination: where clients that name none "
            "(Gotify's) send.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, token included.")] = False,
) -> None:
    """Create a token and print it once: only its hash is stored."""
    from rich.text import Text

    from cli.render import print_json
    from notifyd import tokens as auth
    from notifyd.db import engine_for, upgrade, write_session

    settings = settings_from(ctx)
    engine = engine_for(settings)
    try:
        upgrade(engine)
        with write_session(engine) as session:
            created = auth.create_token(
                session=session, name=name, scope=auth.Scope(scope), destination=destination
            )
    finally:
        engine.dispose()
    if destination is not None and destination not in settings.destinations:
        # Configurations may differ between machines: say so, but the token is made.
        err_console.print(
            Text(
                f"warning: no destination {destination!r} in this configuration; the token "
                "sends nowhere until a server has it"
            ),
            highlight=False,
        )
    if as_json:
        print_json(console, created)
        return
    # The bare token on stdout, so that `TOKEN=$(notifyd tokens create ci)` works.
    typer.echo(created.token)
    err_console.print(
        Text(f"created token {name!r} with scope {scope}; store it now: it cannot be shown again"),
        highlight=False,
    )


def _table(tokens: "list[TokenPublic]") -> "Table":
    from rich.table import Table
    from rich.text import Text

    from cli.render import when, zone_header

    table = Table(box=None, header_style="bold")
    for column in ("name", "scope", "destination", "created", "last used", "revoked"):
        plain = column in ("name", "scope", "destination")
        table.add_column(column if plain else zone_header(column))
    for token in tokens:
        table.add_row(
            Text(token.name),
            token.scope.value,
            Text(token.destination or "-"),
            when(token.created_at),
            when(token.last_used_at),
            when(token.revoked_at),
        )
    return table


@app.command("list")
@handle_errors
def list_command(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List tokens: name, scope, created, last used (never the token)."""
    from cli.render import print_json
    from notifyd import tokens as auth
    from notifyd.db import read_session

    with read_session(open_store(ctx)) as session:
        tokens = auth.list_tokens(session=session, include_revoked=show_all)
    if as_json:
        print_json(console, tokens)
    elif not tokens:
        err_console.print("no tokens: create one with `notifyd tokens create NAME`")
    else:
        console.print(_table(tokens))


@app.command("revoke")
@handle_errors
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
) -> None:
    """Revoke a token: servers refuse it within a few seconds."""
    from rich.text import Text

    from cli.render import when
    from notifyd import tokens as auth
    from notifyd.db import write_session

    with write_session(open_store(ctx)) as session:
        token = auth.revoke_token(session=session, name=name)
    console.print(
        Text(f"token {token.name!r} revoked at {when(token.revoked_at, zone=True)}"),
        highlight=False,
    )
