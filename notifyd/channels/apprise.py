"""The ``apprise`` channel (the optional ``notifyd[apprise]`` extra): Slack, Discord, Telegram, ntfy, …

``to`` is an Apprise URL. A URL Apprise cannot parse is refused when the notification is
submitted; a failed send is transient. Apprise is blocking, so it runs in a worker thread.
Apprise URLs carry their service's tokens: they are shown only in Apprise's privacy form.

The webhook channel's SSRF guard covers Apprise services that connect to the host their URL
names (``json://``, ``ntfy://``, ``gotify://``, …): an IP literal is checked at submit, a name is
resolved and checked before each send, with the same ``[webhook] allow_cidrs``. Apprise makes
the connection itself, so unlike webhooks a DNS answer that changes between the check and the
connection is not caught. A host that does not resolve is a SaaS service's token, not a host.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from notifyd.channels.base import OutgoingMessage, PermanentDeliveryError, TransientDeliveryError
from notifyd.channels.netguard import IPNetwork, is_forbidden
from notifyd.channels.options import destination_of, overlay
from notifyd.config import WebhookSettings
from notifyd.redact import MASK

MAX_LOG_LINES = 5


def apprise_available() -> bool:
    """Whether the ``apprise`` extra is installed."""
    return importlib.util.find_spec("apprise") is not None


class AppriseChannel:
    """Delivers through one Apprise URL per recipient."""

    name: ClassVar[str] = "apprise"

    def __init__(self, guard: WebhookSettings | None = None) -> None:
        import apprise

        self._apprise = apprise
        self.guard = guard or WebhookSettings()

    def _service(self, url: str) -> Any:
        service = self._apprise.Apprise.instantiate(url.strip())
        if service is None:
            raise ValueError(
                "not an Apprise URL this server can use (unknown service or bad format)"
            )
        return service

    def validate_recipient(self, recipient: str) -> str:
        """A URL Apprise can parse (the error never echoes it: it may hold a token), whose host,
        when it is an address, the SSRF guard admits (no DNS here: this is the accept path)."""
        host = _host_of(self._service(recipient))
        if host is not None:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                address = None
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                address = ipaddress.ip_address("127.0.0.1")
            if address is not None and is_forbidden(address, self.guard.allow_cidrs):
                raise ValueError(_REFUSED)
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
        destination = destination_of(message)
        allow = overlay(self.guard, destination.webhook if destination else None).allow_cidrs
        host = _host_of(service)
        if host is not None and _resolves_to_forbidden(host, allow):
            raise PermanentDeliveryError(_REFUSED)
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


_REFUSED = (
    "the URL's host is a loopback, private or otherwise non-public address, which the SSRF "
    "guard refuses; [webhook] allow_cidrs opens chosen ranges"
)


def _host_of(service: Any) -> str | None:
    host = getattr(service, "host", None)
    return host if isinstance(host, str) and host else None


def _resolves_to_forbidden(host: str, allow: Sequence[IPNetwork]) -> bool:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False  # not a host name (a SaaS service's token) or DNS is down: nothing to check
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return any(is_forbidden(address, allow) for address in addresses)


def _problems(result: Any) -> list[str]:
    """Apprise's warnings and errors for this call (Apprise 2 reports them on the result)."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return []
    lines = [entry.message for entry in logs() if entry.level in ("WARNING", "ERROR")]
    return [line[:500] for line in lines[-MAX_LOG_LINES:]]
