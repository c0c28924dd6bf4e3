"""Webhooks: one hung endpoint holds a bounded share of connections and starves no other."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from notifyd.channels.webhook import WebhookChannel
from notifyd.config import WebhookSettings
from tests.channels.helpers import outgoing
from tests.channels.peers import Receiver, Reply

pytestmark = pytest.mark.anyio
HANG = 30  # a bound only a bug reaches: the test waits on events


async def test_a_hung_endpoint_does_not_starve_a_healthy_one() -> None:
    settings = WebhookSettings(allow_cidrs=["127.0.0.0/8"], timeout=HANG * 2)
    channel = WebhookChannel(settings, per_origin=2)
    hold = threading.Event()
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    with Receiver() as hung, Receiver() as healthy:
        hung.replies["/hang"] = Reply(hold=hold)
        served = hung.next_reply

        def note(path: str) -> Reply:
            if len(hung.requests) >= 2:
                loop.call_soon_threadsafe(arrived.set)
            return served(path)

        hung.next_reply = note  # type: ignore[method-assign]
        # More than httpcore's default pool of 10 connections, all to the hung endpoint.
        stuck = [
            asyncio.ensure_future(channel.send(outgoing(), f"{hung.url}/hang")) for _ in range(12)
        ]
        try:
            async with asyncio.timeout(HANG):
                await arrived.wait()
                result = await channel.send(outgoing(), f"{healthy.url}/ok")
            assert result is not None and result["status"] == 200
            assert len(healthy.on("/ok")) == 1
        finally:
            hold.set()
            await asyncio.gather(*stuck, return_exceptions=True)
            await channel.aclose()
    assert len(hung.on("/hang")) == 12  # queued per endpoint, then all delivered


def test_the_registry_sizes_the_webhook_pool_and_the_apprise_pool(tmp_path: Path) -> None:
    """More webhook runs at once than the default pool get as many connections; the Apprise
    pool follows `[channels.apprise] concurrency`."""
    from notifyd.channels.apprise import POOL_SIZE, apprise_available
    from notifyd.channels.registry import build_channels
    from notifyd.channels.webhook import MAX_CONNECTIONS
    from tests.conftest import make_settings

    default = build_channels(make_settings(tmp_path))
    assert default["webhook"].max_connections == MAX_CONNECTIONS  # type: ignore[attr-defined]
    busy = build_channels(
        make_settings(tmp_path, concurrency=300, channels={"apprise": {"concurrency": 16}})
    )
    assert busy["webhook"].max_connections == 300  # type: ignore[attr-defined]
    if apprise_available():
        assert default["apprise"].pool_size == POOL_SIZE  # type: ignore[attr-defined]
        assert busy["apprise"].pool_size == 16  # type: ignore[attr-defined]
