"""The values CLI options accept, declared without importing the store (``--help`` stays fast).

tests/cli/test_startup.py checks that they match the library's own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import typer

E = TypeVar("E", bound=StrEnum)


class Status(StrEnum):
    """A run's state (``notifyd.models.RunStatus``)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    retrying = "retrying"
    failed = "failed"
    cancelled = "cancelled"


class TokenScope(StrEnum):
    """What a token may do (``notifyd.tokens.Scope``)."""

    send = "send"
    read = "read"
    admin = "admin"


class LogFormat(StrEnum):
    """How ``serve`` and ``worker`` write their log lines."""

    text = "text"
    json = "json"


MAX_PAGE = 500  # notifyd.tracking.admin.MAX_PAGE: the most runs one list returns


def parse_as(kind: type[E]) -> Callable[[str], E]:
    """A parser for an option taking one of ``kind``'s values, whose refusal reads as one plain
    line (Typer's own check words it "Value error, ... is not one of ...")."""

    def parse(value: str | E) -> E:
        try:
            return kind(value)
        except ValueError:
            offered = ", ".join(repr(member.value) for member in kind)
            raise typer.BadParameter(f"{value!r} is not one of {offered}") from None

    return parse


def metavar(kind: type[StrEnum]) -> str:
    """``[queued|running|...]``: how help shows the choices."""
    return "[" + "|".join(member.value for member in kind) + "]"


def time_option(value: str | None, name: str) -> datetime | None:
    """A duration ago or an ISO time; a time without a zone is local, as the tables show it."""
    if value is None:
        return None
    from notifyd.errors import InvalidInput
    from notifyd.timeutil import parse_since

    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        naive = None
    if naive is not None and naive.tzinfo is None:
        return naive.astimezone()
    try:
        return parse_since(value)
    except ValueError as exc:
        raise InvalidInput(f"--{name}: {exc}") from None
