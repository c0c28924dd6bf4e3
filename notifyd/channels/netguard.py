"""The SSRF guard: outbound HTTP reaches only public addresses, or ranges the operator allowed.

The guard sits in the HTTP client's network backend, where a connection is opened: it resolves
the name once, refuses it if ANY resolved address is forbidden, and connects to the address it
checked. No second lookup happens, so DNS rebinding has no window, and names such as
``localhost`` are judged by what they resolve to. TLS still uses the URL's host name (SNI and
certificate checks), and the ``Host`` header is the URL's, because httpcore sets both.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Ranges Python's ``is_global`` may call global but that no webhook should reach.
_EXTRA_FORBIDDEN: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT (also holds cloud metadata, 100.100.100.200)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("fec0::/10"),  # deprecated site-local
    ipaddress.ip_network("::/96"),  # deprecated IPv4-compatible
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.ip_network("::ffff:0:0:0/96"),  # SIIT (IPv4-translated)
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv6 forms whose last 32 bits are an IPv4 address to check too.
_EMBEDDING = (
    _NAT64,
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)


class BlockedAddress(Exception):
    """The destination resolves to an address the guard refuses."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (v4-mapped, 6to4, NAT64, SIIT, v4-compatible)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _EMBEDDING):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_forbidden(address: IPAddress, allow: Sequence[IPNetwork] = ()) -> bool:
    """Whether the guard refuses ``address``: anything not global unicast, unless allowed."""
    candidates = [address]
    inner = embedded_ipv4(address)
    if inner is not None:
        candidates.append(inner)
    if any(candidate in network for candidate in candidates for network in allow):
        return False
    return any(_not_public(candidate) for candidate in candidates)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` is written as, in the forms a resolver takes as an address
    (``[::1]``, ``127.1``, ``0x7f.0.0.1``), or None for a name. A bare number (``2130706433``)
    is left to the resolver: Apprise URLs put numeric service ids where a host would be."""
    text = host.strip().strip("[]").split("%", 1)[0].rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if "." not in text or text.strip("0123456789abcdefxABCDEFX."):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _not_public(address: IPAddress) -> bool:
    if address.is_multicast or address.is_unspecified or not address.is_global:
        return True
    return any(address in network for network in _EXTRA_FORBIDDEN)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (off the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class BlockedResolution(socket.gaierror):
    """A name looked up under ``guarded_lookups`` resolved to a forbidden address.

    An OSError, so that libraries that connect by themselves (requests, smtplib) fail the
    connection as they would for a name that does not resolve.
    """


# The allow-list and the record of refusals of the lookups guarded in this context, if any.
_guard: ContextVar[tuple[tuple[IPNetwork, ...], list[str]] | None] = ContextVar(
    "notifyd_lookup_guard", default=None
)
_install_lock = threading.Lock()
_unguarded_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    infos = _unguarded_getaddrinfo(host, port, *args, **kwargs)
    guard = _guard.get()
    if guard is None:
        return infos
    allow, refused = guard
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        if is_forbidden(ipaddress.ip_address(text), allow):
            refused.append(f"{host} resolves to {text}")
            raise BlockedResolution(socket.EAI_FAIL, f"{host}: refused by the SSRF guard")
    return infos


@contextmanager
def guarded_lookups(allow: Iterable[IPNetwork] = ()) -> Iterator[list[str]]:
    """Within this block (this thread and the contexts copied from it), every name or address a
    library resolves through ``socket.getaddrinfo`` (requests, smtplib, …) must be one the guard
    admits, or the lookup fails; the refusals are recorded in the list this yields.

    For code that connects by itself, such as Apprise's plugins, where no network backend can
    be given. Connecting to the address checked, the library cannot be rebound by DNS. The
    hook is installed on first use and does nothing outside such a block.
    """
    with _install_lock:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo
    refused: list[str] = []
    token = _guard.set((tuple(allow), refused))
    try:
        yield refused
    finally:
        _guard.reset(token)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to checked addresses."""

    def __init__(
        self,
        allow: Iterable[IPNetwork] = (),
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow = tuple(allow)
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def checked_addresses(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (the connect timeout covers the lookup)
    ) -> list[str]:
        """Every address ``host`` resolves to, or BlockedAddress if any is forbidden."""
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self.resolver(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        for text in addresses:
            if is_forbidden(ipaddress.ip_address(text.split("%", 1)[0]), self.allow):
                raise BlockedAddress(
                    f"{host} resolves to {text}, a non-public address the SSRF guard refuses "
                    "(allow it with webhook.allow_cidrs)"
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve and check ``host``, then connect to the first checked address that answers."""
        addresses = await self.checked_addresses(host, port, timeout)
        options = list(socket_options) if socket_options is not None else None
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are never a webhook destination."""
        raise BlockedAddress("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the inner backend."""
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a GuardedBackend.

    httpx does not take a network backend, so the pool it built is replaced with one that does;
    proxies are not supported (a proxy would resolve the name itself, past the guard).
    """

    def __init__(
        self, backend: GuardedBackend, *, ssl_context: ssl.SSLContext, max_connections: int = 100
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx's own limits (httpcore's default is only 10 connections for every endpoint).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=backend,
            max_connections=max_connections,
            max_keepalive_connections=min(20, max_connections),
            keepalive_expiry=5.0,
        )
