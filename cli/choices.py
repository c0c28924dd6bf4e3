"""The values CLI options accept, declared without importing the store (``--help`` stays fast).

tests/cli/test_startup.py checks that they match the library's own.
"""

from __future__ import annotations

from enum import StrEnum


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
