"""Webhooks: one hung endpoint holds a bounded share of connections and starves no other."""

from __future__ import annotations

import asyncio
import threading

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
