"""The delivery task's notification reads: cached, and shared by deliveries that start together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from notifyd.db import write_connection
from notifyd.models import Notification
from notifyd.notifications.delivery import DeliveryContext
from notifyd.timeutil import utcnow
from notifyd.tracking.errors import PermanentError

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def selects(migrated: Engine) -> Iterator[list[str]]:
    """Every SELECT on the notification table, as executed."""
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM notification" in statement:
            seen.append(statement)

    event.listen(migrated, "before_cursor_execute", spy)
    yield seen
    event.remove(migrated, "before_cursor_execute", spy)


def _store(engine: Engine, count: int) -> list[str]:
    ids = [f"ntf_{i:03}" for i in range(count)]
    with write_connection(engine) as conn:
        conn.execute(
            NOTIFICATIONS.insert(),
            [
                {
                    "id": i,
                    "channel": "log",
                    "subject": f"s{i}",
                    "message": "m",
                    "recipients": ["a"],
                    "created_at": utcnow(),
                }
                for i in ids
            ],
        )
    return ids


async def test_deliveries_starting_together_share_one_read(
    migrated: Engine, selects: list[str]
) -> None:
    ids = _store(migrated, 20)
    delivery = DeliveryContext(migrated, {})
    notes = await asyncio.gather(*(delivery.notification(i) for i in ids))
    assert [n.id for n in notes] == ids and notes[3].subject == "s" + ids[3]
    assert len(selects) == 1
    again = await asyncio.gather(*(delivery.notification(i) for i in ids))
    assert again == notes and len(selects) == 1  # from the cache


async def test_a_missing_notification_fails_only_its_own_delivery(migrated: Engine) -> None:
    ids = _store(migrated, 2)
    delivery = DeliveryContext(migrated, {})
    found, missing = await asyncio.gather(
        delivery.notification(ids[0]), delivery.notification("ntf_gone"), return_exceptions=True
    )
    assert not isinstance(found, BaseException) and found.id == ids[0]
    assert isinstance(missing, PermanentError) and "no longer exists" in str(missing)


async def test_a_cancelled_delivery_does_not_cancel_its_neighbours_read(migrated: Engine) -> None:
    ids = _store(migrated, 2)
    delivery = DeliveryContext(migrated, {})
    first = asyncio.create_task(delivery.notification(ids[0]))
    second = asyncio.create_task(delivery.notification(ids[1]))
    await asyncio.sleep(0)  # both have joined the same read
    first.cancel()
    assert (await second).id == ids[1]
    with pytest.raises(asyncio.CancelledError):
        await first
