"""The ``apprise`` channel (the optional ``notifyd[apprise]`` extra): Slack, Discord, Telegram, ntfy, …

``to`` is an Apprise URL. A URL Apprise cannot parse is refused when the notification is
submitted; a failed send is transient. Apprise URLs carry their service's tokens: they are shown
only in Apprise's privacy form.

Apprise is blocking, so it runs in the channel's own bounded thread pool, never in the default
executor the request path uses: hung peers fill this pool, nothing else. The socket timeouts a
URL may ask for (``cto``, ``rto``) are clamped to ``[webhook] timeout``, and Apprise's own
retries are off (notifyd's retry policy decides), so a thread is held for a bounded time.

The webhook channel's SSRF guard covers every host an Apprise plugin connects to: at submit,
every host the parsed plugin names (its URL's host, ``mailto://…?smtp=``, any host or URL it
keeps) is refused if it is a non-public address or ``localhost``; during the send, every name
the plugin looks up is checked as it resolves (``netguard.guarded_lookups``), with the same
``[webhook] allow_cidrs``, so names that resolve to loopback and DNS rebinding are caught too.
Plugins that act on this machine rather than over the network (desktop, D-Bus, syslog, blink(1))
are not offered.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlsplit

from notifyd.channels.base import (
    Channel,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    overlay,
)
from notifyd.channels.netguard import guarded_lookups, ip_literal, is_forbidden
from notifyd.config import WebhookSettings
from notifyd.redact import MASK

MAX_LOG_LINES = 5
POOL_SIZE = 8  # Apprise sends in flight at once; more wait for a thread, the API never does
# Plugin modules that act on this machine (a desktop, D-Bus, syslog, a USB light), not a peer.
LOCAL_PLUGINS = frozenset(
    {"blink1", "dbus", "glib", "gnome", "macosx", "rsyslog", "syslog", "windows"}
)


def apprise_available() -> bool:
    """Whether the ``apprise`` extra is installed."""
    return importlib.util.find_spec("apprise") is not None


def notify_type(priority: int) -> str:
    """Apprise's notification type for a priority: services that show one (colour, icon) see
    urgent as failure, high as warning, anything else as info."""
    return {5: "failure", 4: "warning"}.get(priority, "info")


class AppriseChannel(Channel):
    """Delivers through one Apprise URL per recipient."""

    name: ClassVar[str] = "apprise"

    def __init__(self, guard: WebhookSettings | None = None, *, pool_size: int = POOL_SIZE) -> None:
        import apprise

        self._apprise = apprise
        self.guard = guard or WebhookSettings()
        self.pool_size = pool_size
        self._pool: ThreadPoolExecutor | None = None
        # No service deadline: Apprise would wait in its own shared pool, past this one's bound.
        self._asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)

    def _service(self, url: str) -> Any:
        service = self._apprise.Apprise.instantiate(url.strip(), asset=self._asset)
        if service is None:
            raise ValueError(
                "not an Apprise URL this server can use (unknown service or bad format)"
            )
        if type(service).__module__.rsplit(".", 1)[-1] in LOCAL_PLUGINS:
            raise ValueError(
                f"the {service.service_name} service acts on this machine; it is not offered"
            )
        return service

    def validate_recipient(self, recipient: str) -> str:
        """A URL Apprise can parse (the error never echoes it: it may hold a token), every host
        of which, when it is an address or ``localhost``, the SSRF guard admits (no DNS here:
        this is the accept path)."""
        for host in hosts_of(self._service(recipient)):
            address = ip_literal(host)
            name = host.lower().rstrip(".")
            if name == "localhost" or name.endswith(".localhost"):
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
        """Notify in a thread of this channel's pool; a failure is transient unless the SSRF
        guard refused a host."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.pool_size, thread_name_prefix="notifyd-apprise")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._notify, message, recipient)

    def _notify(self, message: OutgoingMessage, recipient: str) -> dict[str, Any]:
        destination = message.destination
        settings = overlay(self.guard, destination.webhook if destination else None)
        try:
            service = self._service(recipient)
        except ValueError as exc:
            raise PermanentDeliveryError(str(exc)) from None
        # The URL may ask for long socket timeouts (?cto=, ?rto=) and retries (?retry=, ?wait=).
        service.socket_connect_timeout = min(service.socket_connect_timeout, settings.timeout)
        service.socket_read_timeout = min(service.socket_read_timeout, settings.timeout)
        service.retry = 0
        service.wait = 0
        sender = self._apprise.Apprise(asset=self._asset)
        sender.add(service)
        with guarded_lookups(settings.allow_cidrs) as refused:
            result = sender.notify(
                body=message.message,
                title=message.subject or "",
                notify_type=notify_type(message.priority),
            )
        if refused:
            raise PermanentDeliveryError(f"{_REFUSED} ({refused[0]})")
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
        """Stop the pool: queued sends are dropped (their runs are retried), a hung one ends
        at its clamped socket timeout."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_REFUSED = (
    "a host this Apprise URL connects to is a loopback, private or otherwise non-public "
    "address, which the SSRF guard refuses; [webhook] allow_cidrs opens chosen ranges"
)


def hosts_of(service: Any) -> set[str]:
    """Every host an Apprise plugin names: its URL's host, and any attribute that holds a host
    (``smtp_host``, ``home_server``, …) or a URL (``…_url``, ``…endpoint``)."""
    hosts: set[str] = set()
    for attribute, value in vars(service).items():
        name = attribute.rsplit("__", 1)[-1].lower()  # private attributes are name-mangled
        for text in _texts(value):
            if "://" in text:
                host = urlsplit(text).hostname
                if host:
                    hosts.add(host)
            elif "host" in name or "server" in name:
                hosts.add(text.strip())
    return {host for host in hosts if host}


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple | set):
        yield from (item for item in value if isinstance(item, str) and "://" in item)


def _problems(result: Any) -> list[str]:
    """Apprise's warnings and errors for this call (Apprise 2 reports them on the result)."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return []
    lines = [entry.message for entry in logs() if entry.level in ("WARNING", "ERROR")]
    return [line[:500] for line in lines[-MAX_LOG_LINES:]]
