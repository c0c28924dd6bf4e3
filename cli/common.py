"""What every command shares: settings from the root options, consoles, and turning errors into one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from notifyd.config import Settings, load_settings
from notifyd.db import check_schema, current_revision, engine_for, sqlite_path
from notifyd.errors import ConfigError, NotifydError

P = ParamSpec("P")
R = TypeVar("R")

# Piped output is not cut to 80 columns: scripts and logs get whole rows.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def db_url_from_option(db: str | None) -> str | None:
    """``--db`` takes a SQLAlchemy URL or the path of a SQLite file."""
    if db is None:
        return None
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings from the root ``--config``/``--db`` options, the environment and ``overrides``."""
    root: dict[str, Any] = ctx.find_root().obj or {}
    values = {"database_url": root.get("database_url"), **overrides}
    try:
        return load_settings(root.get("config"), **values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise ConfigError(f"invalid configuration: {exc}".splitlines()[0]) from None


def open_store(ctx: typer.Context, settings: Settings | None = None) -> Engine:
    """An engine on an existing, migrated store (``tasks`` commands read it directly), disposed
    of when the command ends."""
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn NotifydError and store errors into one line and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NotifydError as exc:
            raise fail(exc.detail, exc.exit_code) from None
        except SQLAlchemyError as exc:
            message = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise fail(f"database error: {message}") from None
        except OSError as exc:  # a data dir or database path that cannot be created or read
            raise fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper
