"""The ``apprise`` channel (the optional ``notifyd[apprise]`` extra): Slack, Discord, Telegram, ntfy, …

``to`` is an Apprise URL. A URL Apprise cannot parse is refused when the notification is
submitted; a failed send is transient. Apprise is blocking, so it runs in a worker thread.
Apprise URLs carry their service's tokens: they are shown only in Apprise's privacy form.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, ClassVar
from urllib.parse import urlsplit

from notifyd.channels.base import OutgoingMessage, TransientDeliveryError
from notifyd.redact import MASK

MAX_LOG_LINES = 5


def apprise_available() -> bool:
    """Whether the ``apprise`` extra is installed."""
    return importlib.util.find_spec("apprise") is not None


class AppriseChannel:
    """Delivers through one Apprise URL per recipient."""

    name: ClassVar[str] = "apprise"

    def __init__(self) -> None:
        import apprise

        self._apprise = apprise

    def _service(self, url: str) -> Any:
        service = self._apprise.Apprise.instantiate(url.strip())
        if service is None:
            raise ValueError(
                "not an Apprise URL this server can use (unknown service or bad format)"
            )
        return service

    def validate_recipient(self, recipient: str) -> str:
        """A URL Apprise can parse (the error never echoes it: it may hold a token)."""
        self._service(recipient)
        return recipient.strip()

    def describe_recipient(self, recipient: str) -> str:
        """Apprise's privacy form of the URL (tokens cut short), its path and query masked too:
        the generic ``json://``/``xml://``/``form://`` services leave tokens in paths alone."""
        privacy = urlsplit(self._service(recipient).url(privacy=True))
        path = "" if privacy.path in ("", "/") else f"/{MASK}"
        return f"{privacy.scheme}://{privacy.netloc}{path}"

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Notify in a worker thread; any failure is transient."""
        return await asyncio.to_thread(self._notify, message, recipient)

    def _notify(self, message: OutgoingMessage, recipient: str) -> dict[str, Any]:
        service = self._service(recipient)
        sender = self._apprise.Apprise()
        sender.add(service)
        result = sender.notify(body=message.message, title=message.subject or "")
        summary: dict[str, Any] = {"service": str(service.service_name)}
        if not result:
            problems = _problems(result)
            if problems:
                summary["log"] = problems
            detail = problems[-1] if problems else "see the server log"
            raise TransientDeliveryError(
                f"{service.service_name} notification failed: {detail}", response=summary
            )
        return summary

    async def aclose(self) -> None:
        """Apprise keeps nothing open between sends."""


def _problems(result: Any) -> list[str]:
    """Apprise's warnings and errors for this call (Apprise 2 reports them on the result)."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return []
    lines = [entry.message for entry in logs() if entry.level in ("WARNING", "ERROR")]
    return [line[:500] for line in lines[-MAX_LOG_LINES:]]
