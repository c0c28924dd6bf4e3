"""The SSRF guard: which addresses it refuses, and that it connects to the address it checked."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import pytest

from notifyd.channels.netguard import BlockedAddress, GuardedBackend, is_forbidden

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "127.255.255.254",
        "::1",
        "10.0.0.1",  # private
        "172.16.5.4",
        "192.168.1.1",
        "fd00::1",  # unique local
        "169.254.169.254",  # link-local: cloud metadata
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "100.64.0.1",  # CGNAT
        "100.100.100.200",  # Alibaba metadata, inside CGNAT
        "224.0.0.1",  # multicast
        "233.252.0.1",
        "ff02::1",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "0.0.0.0",  # unspecified
        "::",
        "192.0.2.10",  # documentation
        "198.18.0.1",  # benchmarking
        "::ffff:127.0.0.1",  # v4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "64:ff9b:1::7f00:1",  # local-use NAT64 around 127.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:0:7f00:1",  # SIIT around 127.0.0.1
    ],
)
def test_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


def test_allow_list_opens_ranges_v4_mapped_included() -> None:
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert not is_forbidden(ipaddress.ip_address("127.0.0.1"), allow)
    assert not is_forbidden(ipaddress.ip_address("::ffff:127.0.0.1"), allow)
    assert not is_forbidden(ipaddress.ip_address("fd00::5"), allow)
    assert is_forbidden(ipaddress.ip_address("10.0.0.1"), allow)
    assert is_forbidden(ipaddress.ip_address("::1"), allow)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the real backend: records where it was asked to connect."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        raise httpcore.ConnectError("refused (recorded)")


async def test_connects_to_the_address_it_checked_not_to_the_name() -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding name: safe first, then private

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    inner = RecordingBackend()
    backend = GuardedBackend([ipaddress.ip_network("127.0.0.1/32")], resolver=resolver, inner=inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example.test", 80)
    assert inner.connected == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        await backend.connect_tcp("rebind.example.test", 80)
    assert inner.connected == ["127.0.0.1"]


async def test_tries_each_checked_address_in_turn() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.3"]

    inner = RecordingBackend()
    backend = GuardedBackend([ipaddress.ip_network("127.0.0.0/8")], resolver=resolver, inner=inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("two.example.test", 80)
    assert inner.connected == ["127.0.0.2", "127.0.0.3"]


async def test_unresolvable_names_are_connection_errors() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        await GuardedBackend(resolver=resolver).connect_tcp("nowhere.invalid", 80)


async def test_a_hanging_lookup_is_bounded_by_the_connect_timeout() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(httpcore.ConnectTimeout):
        await GuardedBackend(resolver=resolver).connect_tcp("slow.example.test", 80, timeout=0.1)
