"""What every command shares: settings from the root options, consoles, and turning errors into one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from notifyd.errors import ConfigError, NotifydError, from_tracking
from notifyd.tracking.errors import TrackingError

# Only what `notifyd --help` and completion need is imported here: the store, the settings and
# the HTTP client load inside the commands that use them (see tests/cli/test_startup.py).
if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from notifyd.config import Settings

P = ParamSpec("P")
R = TypeVar("R")

# Click's plain help: Rich-formatted help costs ~0.2 s of imports on every --help and Tab, showed
# flags as taking a value (`--json <bool>`) and broke choices mid-word.
HELP_STYLE: dict[str, Any] = {"rich_markup_mode": None}


def _live_console(*, stderr: bool) -> Console:
    """A console whose width follows ``COLUMNS`` or the terminal when it prints, not as they were
    when it was made: piped output takes the width of the terminal it is piped from."""
    from rich.console import Console

    made = Console(stderr=stderr)
    made._width = None  # Rich freezes COLUMNS at construction; its size() reads it live
    return made


class _DeferredConsole:
    """Stands for a console made on first use: Rich's console and text modules cost a third of
    a plain start, which ``--help``, ``--version`` and each Tab of completion do not need."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _get(self) -> Console:
        if self._console is None:
            self._console = _live_console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    # Special methods are looked up on the type, never through __getattr__: `with console:`
    # (Rich's Live and Status use it) must reach the real console too.
    def __enter__(self) -> Console:
        return self._get().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._get().__exit__(*exc)


if TYPE_CHECKING:
    console: Console
    err_console: Console
else:
    console = _DeferredConsole(stderr=False)
    err_console = _DeferredConsole(stderr=True)


def db_url_from_option(db: str | None) -> str | None:
    """``--db`` takes a SQLAlchemy URL or the path of a SQLite file."""
    if db is None:
        return None
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings from the root ``--config``/``--db`` options, the environment and ``overrides``."""
    from pydantic import ValidationError

    from notifyd.config import load_settings

    root: dict[str, Any] = ctx.find_root().obj or {}
    # A subcommand's unset option (None) must not hide the root's: `notifyd --db URL serve`
    # serves URL, and a subcommand's own `--db` wins when given.
    values = {"database_url": root.get("database_url")}
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return load_settings(root.get("config"), **values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise ConfigError(f"invalid configuration: {exc}".splitlines()[0]) from None


def open_store(ctx: typer.Context, settings: Settings | None = None) -> Engine:
    """An engine on an existing, migrated store (``tasks`` commands read it directly), disposed
    of when the command ends."""
    from notifyd.db import check_schema, current_revision, engine_for, sqlite_path

    settings = settings or settings_from(ctx)
    path = sqlite_path(settings.db_url)
    if path is not None and not path.exists():  # do not create a store by reading a typo
        raise NotifydError(
            f"no notifyd database at {path}: start the server or run `notifyd db upgrade`"
        )
    engine = engine_for(settings)
    if current_revision(engine) is None:
        raise NotifydError(
            f"no notifyd database at {settings.db_url}: start the server or run `notifyd db upgrade`"
        )
    ctx.call_on_close(engine.dispose)
    check_schema(engine, allow_behind=False)
    return engine


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable line to stderr and return the Exit to raise."""
    from rich.text import Text

    err_console.print(
        Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


class _NoError(Exception):
    """Never raised: stands for the store's errors while SQLAlchemy is not loaded."""


def _store_error() -> type[Exception]:
    # An except clause's class is looked up only when an exception arrives: no import at start.
    if "sqlalchemy" not in sys.modules:
        return _NoError
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn NotifydError and store errors into one line and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NotifydError as exc:
            raise fail(exc.detail, exc.exit_code) from None
        except TrackingError as exc:
            raise fail(str(exc), from_tracking(exc).exit_code) from None
        except _store_error() as exc:
            message = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise fail(f"database error: {message}") from None
        except OSError as exc:  # a data dir or database path that cannot be created or read
            raise fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper
