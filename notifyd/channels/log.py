"""The ``log`` channel: one JSON line per delivered notification in the server's log file."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from notifyd.channels.base import OutgoingMessage
from notifyd.timeutil import utcnow


class LogChannel:
    """Appends deliveries to a file chosen by the server's configuration, never by the client."""

    name: ClassVar[str] = "log"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def validate_recipient(self, recipient: str) -> str:
        """Any non-blank name is a valid log recipient."""
        value = recipient.strip()
        if not value:
            raise ValueError("recipient must not be blank")
        return value

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Append the line (off the event loop) and report where it went."""
        line = json.dumps(
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
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        await asyncio.to_thread(self._append, line)
        return {"file": str(self.path)}

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    async def aclose(self) -> None:
        """Nothing stays open between deliveries."""
