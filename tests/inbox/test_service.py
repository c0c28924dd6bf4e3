"""Publishing through the inbox: read and stamped in one write, offered in order, once; and
messages that come while a fan-out rests go out together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from notifyd.db import make_engine, upgrade
from notifyd.inbox.broker import Broker
from notifyd.inbox.relay import PgRelay
from notifyd.inbox.service import Inbox
from notifyd.inbox.store import InboxStore, StoredMessage
from tests.inbox.test_store import NOW, add

pytestmark = pytest.mark.anyio


def inbox_of(engine: Engine, **options: Any) -> tuple[Inbox, list[list[int]]]:
    """An inbox on ``engine`` whose writes run in a thread, and the seqs of each fan-out."""
    broker = Broker()
    fan_outs: list[list[int]] = []
    fan_out = broker.fan_out

    async def counted(messages: Sequence[StoredMessage]) -> list[int]:
        fan_outs.append([m.seq for m in messages])
        return await fan_out(messages)

    broker.fan_out = counted  # type: ignore[method-assign]

    async def write(job: Callable[[Connection], Any]) -> Any:
        def run() -> Any:
            with engine.begin() as conn:
                return job(conn)

        return await asyncio.to_thread(run)

    clock = iter(NOW + timedelta(milliseconds=n) for n in range(1_000_000))
    return Inbox(InboxStore(engine), broker, write, lambda: next(clock), **options), fan_outs


async def test_a_message_is_offered_once_and_a_rerun_is_told_it_was(engine: Engine) -> None:
    add(engine, "phone", "hello", NOW, offered=False)
    inbox, _ = inbox_of(engine)
    subscription = inbox.broker.subscribe(["phone"], address="a", token=None)
    first = await inbox.publish("ntf_phone_hello", "phone")
    assert first.message is not None and first.subscribers == 1 and not first.before
    again = await inbox.publish("ntf_phone_hello", "phone")
    assert again.before and again.subscribers == 0
    gone = await inbox.publish("ntf_phone_nothing", "phone")
    assert gone.message is None and not gone.before
    batch = await subscription.next(1.0)
    assert batch is not None and [e.message.message for e in batch] == ["hello"]
    kept = inbox.store.of_notification("ntf_phone_hello", "phone")
    assert kept is not None and kept.published_at is not None


async def test_messages_that_come_while_a_fan_out_rests_go_out_together(engine: Engine) -> None:
    for n in range(6):
        add(engine, "phone", f"m{n}", NOW, offered=False)
    # A rest far longer than a fan-out takes, capped at a second.
    inbox, fan_outs = inbox_of(engine, fan_out_rest=1e9, fan_out_rest_max=1.0)
    subscription = inbox.broker.subscribe(["phone"], address="a", token=None)
    await inbox.publish("ntf_phone_m0", "phone")
    later = []
    for n in range(1, 6):  # each stamped on its own, while the first fan-out rests
        later.append(asyncio.create_task(inbox.publish(f"ntf_phone_m{n}", "phone")))
        await asyncio.sleep(0.01)
    published = await asyncio.gather(*later)
    assert [len(seqs) for seqs in fan_outs] == [1, 5]
    assert all(p.subscribers == 1 for p in published)
    seen: list[str] = []
    while len(seen) < 6:
        batch = await subscription.next(1.0)
        assert batch
        seen += [e.message.message for e in batch]
    assert seen == [f"m{n}" for n in range(6)]


async def test_without_a_rest_each_publication_has_its_own_fan_out(engine: Engine) -> None:
    for n in range(3):
        add(engine, "phone", f"m{n}", NOW, offered=False)
    inbox, fan_outs = inbox_of(engine, fan_out_rest=0.0)
    for n in range(3):
        await inbox.publish(f"ntf_phone_m{n}", "phone")
    assert [len(seqs) for seqs in fan_outs] == [1, 1, 1]


@pytest.mark.postgres
async def test_every_process_offers_what_was_published_before_in_one_order(
    postgres_url: str,
) -> None:
    """A subscriber of process X gets a message process Y published before X's, even when Y's
    announcement never reaches X, and in the store's order: so that a reconnect with
    ``since=<X's message>`` leaves nothing out."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    try:
        for text in ("from-y", "from-x"):
            add(engine, "phone", text, NOW, offered=False)
        x, _ = inbox_of(engine, relay=PgRelay(engine))
        y, _ = inbox_of(engine, relay=PgRelay(engine))
        await x.start(prune=False)
        try:
            subscription = x.broker.subscribe(["phone"], address="a", token=None)

            async def lost(seqs: list[int]) -> bool:
                return False  # Y's NOTIFY never arrives

            y.relay.announce = lost  # type: ignore[union-attr, method-assign]
            from_y = await y.publish("ntf_phone_from-y", "phone")
            from_x = await x.publish("ntf_phone_from-x", "phone")
            assert from_x.subscribers == 1 and from_y.message is not None
            batch = await subscription.next(1.0)
            assert batch is not None
            got = [e.message.message for e in batch]
            assert got == ["from-y", "from-x"]
            stamps = [e.message.published_at for e in batch]
            assert None not in stamps and stamps[0] < stamps[1]  # type: ignore[operator]
            assert await x.catch_up() == 0  # nothing offered twice
        finally:
            await x.stop()
            if y.relay is not None:
                await y.relay.stop()
    finally:
        engine.dispose()
