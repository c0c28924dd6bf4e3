"""The ``webhook`` channel: POST the notification as JSON, signed per Standard Webhooks.

Only 2xx is success. Redirects are not followed. 410 Gone is permanent; every other failure
(3xx, 4xx, 5xx, timeouts, connection errors) is transient, with the peer's ``Retry-After``
passed to the retry policy, as Standard Webhooks senders do. Destinations are guarded against
SSRF (see ``netguard``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx

from notifyd import __version__
from notifyd.channels.base import (
    Channel,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    overlay,
)
from notifyd.channels.netguard import (
    BlockedAddress,
    GuardedBackend,
    GuardedTransport,
    IPNetwork,
    Resolver,
    system_resolver,
)
from notifyd.config import WEBHOOK_SECRET_PREFIX, WebhookSettings
from notifyd.redact import MASK
from notifyd.timeutil import utcnow
from notifyd.tracing import outgoing_headers

MAX_RECORDED_BODY = 20 * 1024
# Connections open at once: at least the dispatcher's concurrency, so no delivery waits for one.
MAX_CONNECTIONS = 100
# Requests in flight to one origin: one hung endpoint holds no more than this many connections.
PER_ORIGIN = 10
USER_AGENT = f"notifyd/{__version__}"
# One connection pool per (allow-list, extra CA): destinations may differ in both.
PoolKey = tuple[tuple[IPNetwork, ...], Path | None]


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(message: OutgoingMessage) -> bytes:
    """The JSON body: the notification, the same on every retry."""
    document = {
        "id": message.notification_id,
        "subject": message.subject,
        "message": message.message,
        "data": message.data,
        "created_at": message.created_at.isoformat(),
        "priority": message.priority,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - utcnow()).total_seconds(), 0.0)


class WebhookChannel(Channel):
    """Delivers to HTTP endpoints; ``to`` is the endpoint URL."""

    name: ClassVar[str] = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        resolver: Resolver = system_resolver,
        max_connections: int = MAX_CONNECTIONS,
        per_origin: int = PER_ORIGIN,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.max_connections = max_connections
        self.per_origin = min(per_origin, max_connections)
        self._clients: dict[PoolKey, httpx.AsyncClient] = {}
        self._origins: dict[tuple[str, str, int | None], asyncio.Semaphore] = {}

    def validate_recipient(self, recipient: str) -> str:
        """An absolute http(s) URL with a host."""
        value = recipient.strip()
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise ValueError("a webhook URL must not contain spaces or control characters")
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https"):
            raise ValueError("a webhook URL must start with http:// or https://")
        if not url.host:
            raise ValueError("a webhook URL needs a host")
        return value

    def describe_recipient(self, recipient: str) -> str:
        """The URL as shown: its origin only, since paths and queries often carry tokens."""
        url = httpx.URL(recipient)
        port = f":{url.port}" if url.port else ""
        host = f"[{url.host}]" if ":" in url.host else url.host
        rest = "" if url.raw_path in (b"", b"/") else f"/{MASK}"
        return f"{url.scheme}://{host}{port}{rest}"

    def _client(self, settings: WebhookSettings) -> httpx.AsyncClient:
        key: PoolKey = (tuple(settings.allow_cidrs), settings.ca_file)
        client = self._clients.get(key)
        if client is None:
            backend = GuardedBackend(settings.allow_cidrs, resolver=self.resolver)
            ssl_context = httpx.create_ssl_context(trust_env=False)
            if settings.ca_file is not None:
                ssl_context.load_verify_locations(cafile=settings.ca_file)
            client = httpx.AsyncClient(
                transport=GuardedTransport(
                    backend, ssl_context=ssl_context, max_connections=self.max_connections
                ),
                follow_redirects=False,
                trust_env=False,
                headers={"user-agent": USER_AGENT},
            )
            self._clients[key] = client
        return client

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """POST the signed notification; classify the answer."""
        destination = message.destination
        settings = overlay(self.settings, destination.webhook if destination else None)
        body = payload(message)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.delivery_id,
            "webhook-timestamp": str(timestamp),
        }
        # Inside the attempt's span (with opentelemetry on): the receiver can join the trace.
        headers.update(outgoing_headers())
        if settings.secret is not None:
            headers["webhook-signature"] = sign(
                settings.secret.get_secret_value(), message.delivery_id, timestamp, body
            )
        client = self._client(settings)
        url = httpx.URL(recipient)
        host = url.host
        request = client.build_request(
            "POST", recipient, content=body, headers=headers, timeout=settings.timeout
        )
        origin = (url.scheme, host, url.port)
        slots = self._origins.setdefault(origin, asyncio.Semaphore(self.per_origin))
        async with slots:
            return await self._exchange(client, request, host, settings.timeout)

    async def _exchange(
        self, client: httpx.AsyncClient, request: httpx.Request, host: str, budget: float
    ) -> dict[str, Any] | None:
        """Send and classify; the timeout starts here, once the origin has a free slot."""
        started = time.perf_counter()
        try:
            # The timeout bounds the whole exchange, not each read: a peer that drips its
            # answer a byte at a time must not hold a delivery slot for hours.
            async with asyncio.timeout(budget):
                response = await client.send(request, stream=True)
        except BlockedAddress as exc:
            raise PermanentDeliveryError(str(exc)) from None
        except (TimeoutError, httpx.TimeoutException):
            raise TransientDeliveryError(f"{host} did not answer within {budget:g}s") from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientDeliveryError(f"request to {host} failed: {detail}") from None
        try:
            summary = await _summary(response, started, budget)
        finally:
            await response.aclose()
        return _classify(response, summary, host)

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


async def _summary(response: httpx.Response, started: float, budget: float) -> dict[str, Any]:
    """Status, duration and at most 20 KB of the body, read without downloading more.

    The status decides the outcome: a body that fails or stalls while being read is noted, not
    held against a delivery the peer already accepted.
    """
    chunks: list[bytes] = []
    size = 0
    truncated = False
    body_error = None
    try:
        async with asyncio.timeout(budget):
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RECORDED_BODY:
                    truncated = True
                    break
    except (TimeoutError, httpx.HTTPError) as exc:
        body_error = type(exc).__name__
    raw = b"".join(chunks)[:MAX_RECORDED_BODY]
    summary: dict[str, Any] = {
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "body": raw.decode(response.encoding or "utf-8", errors="replace"),
    }
    if truncated:
        summary["body_truncated"] = True
    if body_error is not None:
        summary["body_error"] = body_error
    if response.is_redirect and "location" in response.headers:
        summary["location"] = response.headers["location"]
    if "retry-after" in response.headers:
        summary["retry_after"] = response.headers["retry-after"]
    return summary


def _classify(response: httpx.Response, summary: dict[str, Any], host: str) -> dict[str, Any]:
    status = response.status_code
    if response.is_success:
        return summary
    reason = f"{host} answered {status} {response.reason_phrase}".rstrip()
    if status == 410:
        raise PermanentDeliveryError(f"{reason}: the endpoint is gone", response=summary)
    if response.is_redirect:
        reason += " (redirects are not followed)"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    raise TransientDeliveryError(reason, retry_after=retry_after, response=summary)
