"""Apprise: the SSRF guard covers every host a plugin connects to; hung sends stall nothing else."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from notifyd.channels import netguard
from notifyd.channels.apprise import AppriseChannel
from notifyd.channels.base import PermanentDeliveryError, TransientDeliveryError
from notifyd.config import WebhookSettings
from tests.channels.conftest import Serve
from tests.channels.helpers import outgoing
from tests.channels.peers import HangingServer, Mailbox, SmtpServer

pytestmark = pytest.mark.anyio
LOOPBACK = WebhookSettings(allow_cidrs=["127.0.0.0/8"])
# A name only these tests resolve, to loopback (see ``internal_name``).
INTERNAL = "mail.internal.test"
HANG = 30  # a bound on waits that only a bug makes long: the tests wait on events, not on it


def mailto(smtp: str, port: int = 25, scheme: str = "mailto") -> str:
    return (
        f"{scheme}://example.com?smtp={smtp}&port={port}"
        "&from=alerts@example.com&to=ops@example.org&mode=insecure"
    )


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox: Mailbox) -> Iterator[SmtpServer]:
    with SmtpServer(mailbox) as server:
        yield server


@pytest.fixture
def internal_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve ``INTERNAL`` to 127.0.0.1, as a name in an internal DNS zone would."""
    real = netguard._unguarded_getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == INTERNAL else host, port, *args, **kwargs)

    monkeypatch.setattr(netguard, "_unguarded_getaddrinfo", resolve)


@pytest.mark.parametrize(
    "url",
    [
        mailto("127.0.0.1", 18925),
        mailto("localhost"),
        mailto("LOCALHOST."),
        mailto("[::1]"),
        mailto("127.1"),
        mailto("0x7f.0.0.1"),
        mailto("169.254.169.254", 587, "mailtos"),
        mailto("10.0.0.5"),
        "mailto://user:pass@example.com?smtp=127.0.0.1&port=18925&from=a@example.com",
        "ntfy://mail.localhost/topic",
    ],
)
def test_every_host_a_plugin_names_is_checked_at_submit(url: str) -> None:
    with pytest.raises(ValueError, match="SSRF"):
        AppriseChannel().validate_recipient(url)


def test_the_allow_list_opens_those_hosts() -> None:
    url = mailto("127.0.0.1", 18925)
    assert AppriseChannel(LOOPBACK).validate_recipient(url) == url


@pytest.mark.parametrize(
    "url", ["syslog://", "rsyslog://syslog.example.org", "rsyslog://127.0.0.1"]
)
def test_plugins_that_act_on_this_machine_are_not_offered(url: str) -> None:
    with pytest.raises(ValueError, match="not offered"):
        AppriseChannel().validate_recipient(url)


def test_a_hidden_host_is_422_at_submit(serve: Serve) -> None:
    client = serve()
    response = client.post(
        "/v1/notifications",
        json={"channel": "apprise", "to": mailto("127.0.0.1", 18925), "message": "m"},
    )
    assert response.status_code == 422
    assert "SSRF" in response.json()["detail"]
    assert "18925" not in response.text


async def test_a_name_resolving_to_loopback_is_refused_when_the_plugin_looks_it_up(
    internal_name: None, smtp_server: SmtpServer, mailbox: Mailbox
) -> None:
    url = mailto(INTERNAL, smtp_server.port)
    channel = AppriseChannel()
    assert channel.validate_recipient(url) == url  # a name: judged when it is resolved
    try:
        with pytest.raises(PermanentDeliveryError, match=f"SSRF.*{INTERNAL} resolves to 127"):
            await channel.send(outgoing(), url)
    finally:
        await channel.aclose()
    assert mailbox.envelopes == []


async def test_the_email_plugin_delivers_to_an_allowed_smtp_host(
    internal_name: None, smtp_server: SmtpServer, mailbox: Mailbox
) -> None:
    channel = AppriseChannel(LOOPBACK)
    try:
        result = await channel.send(outgoing(), mailto(INTERNAL, smtp_server.port))
    finally:
        await channel.aclose()
    assert result == {"service": "E-Mail"}
    assert mailbox.envelopes == [("alerts@example.com", ["ops@example.org"])]


def connections_reached(server: HangingServer, count: int) -> asyncio.Event:
    """An event set once ``server`` has accepted ``count`` connections."""
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()

    def accepted(total: int) -> None:
        if total >= count:
            loop.call_soon_threadsafe(reached.set)

    server.on_accept = accepted
    return reached


async def test_hung_sends_fill_their_own_pool_not_the_default_executor() -> None:
    """The API runs /healthz, token reloads and idempotency look-ups in the default executor."""
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(2, thread_name_prefix="default")
    loop.set_default_executor(default)
    settings = WebhookSettings(allow_cidrs=["127.0.0.0/8"], timeout=HANG * 2)
    channel = AppriseChannel(settings, pool_size=2)
    with HangingServer() as peer:
        url = f"json://127.0.0.1:{peer.port}/x?rto=600&cto=600"
        full = connections_reached(peer, 2)
        sends = [asyncio.ensure_future(channel.send(outgoing(), url)) for _ in range(4)]
        try:
            async with asyncio.timeout(HANG):
                await full.wait()  # the channel's pool is full of hung sends
                name = await asyncio.to_thread(lambda: threading.current_thread().name)
            assert name.startswith("default")
        finally:
            await channel.aclose()
    for send in sends:
        send.cancel()
    await asyncio.gather(*sends, return_exceptions=True)


async def test_timeouts_a_url_asks_for_are_clamped_to_the_webhook_timeout() -> None:
    channel = AppriseChannel(WebhookSettings(allow_cidrs=["127.0.0.0/8"], timeout=0.5))
    with HangingServer() as peer:
        url = f"json://127.0.0.1:{peer.port}/x?rto=600&cto=600&retry=5&wait=30"
        try:
            async with asyncio.timeout(HANG):
                with pytest.raises(TransientDeliveryError):
                    await channel.send(outgoing(), url)
        finally:
            await channel.aclose()
    assert peer.connections == 1  # Apprise's own retries are off: notifyd's policy retries


def test_the_lookup_guard_acts_only_inside_its_block() -> None:
    with netguard.guarded_lookups() as refused, pytest.raises(socket.gaierror):
        socket.getaddrinfo("127.0.0.1", 80)
    assert refused == ["127.0.0.1 resolves to 127.0.0.1"]
    assert socket.getaddrinfo("127.0.0.1", 80)  # the webhook resolver and the API are unaffected
