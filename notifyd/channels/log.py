"""The ``log`` channel: one JSON line per delivered notification in the server's log file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, TextIO

from notifyd.channels.base import Channel, OutgoingMessage
from notifyd.timeutil import utcnow

# One encoder for every line (json.dumps with options builds a new one each time).
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# How often to look whether the file was moved away (log rotation): a stat per line was a
# tenth of a delivery's cost, and lines written meanwhile land in the moved file, not nowhere
# (a file deleted outright takes with it the lines of that second, as it takes every earlier one).
REOPEN_CHECK_SECONDS = 1.0


def non_blank(recipient: str) -> str:
    """The recipient without surrounding blanks; a blank one is refused."""
    value = recipient.strip()
    if not value:
        raise ValueError("recipient must not be blank")
    return value


class LogChannel(Channel):
    """Appends deliveries to a file chosen by the server's configuration, never by the client."""

    name: ClassVar[str] = "log"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._shown_path = str(path)
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        self._inode: int | None = None
        self._checked = 0.0

    def validate_recipient(self, recipient: str) -> str:
        """Any non-blank name is a valid log recipient."""
        return non_blank(recipient)

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Append the line (off the event loop) and report where it went."""
        line = _LINE.encode(
            {
                "delivery_id": message.delivery_id,
                "notification_id": message.notification_id,
                "to": recipient,
                "subject": message.subject,
                "message": message.message,
                "data": message.data,
                "created_at": message.created_at.isoformat(),
                "delivered_at": utcnow().isoformat(),
                "attempt": message.attempt,
                "priority": message.priority,
            }
        )
        # Appending one line to a local file takes microseconds: a thread hop would cost more.
        self._append(line)
        return {"file": self._shown_path}

    def _append(self, line: str) -> None:
        with self._lock:
            handle = self._open()
            handle.write(line + "\n")
            handle.flush()

    def _open(self) -> TextIO:
        # Reopen when the file was moved or deleted (log rotation) since it was opened.
        now = time.monotonic()
        if self._handle is not None and now - self._checked < REOPEN_CHECK_SECONDS:
            return self._handle
        self._checked = now
        try:
            inode: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self._handle is None or inode != self._inode:
            if self._handle is not None:
                self._handle.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
            self._inode = self.path.stat().st_ino
        return self._handle

    async def aclose(self) -> None:
        """Close the file."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
