"""The inbox's store on SQLite and PostgreSQL: what each ``since`` returns, in order; pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from notifyd.inbox.models import InboxMessage
from notifyd.inbox.store import (
    EVERYTHING,
    NOTHING,
    InboxStore,
    Since,
    SinceKind,
    mark_published,
    message_id_of,
    message_row,
    parse_go_duration,
    parse_since,
    prune_messages,
)
from notifyd.models import Notification

MESSAGES = InboxMessage.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KEEP = timedelta(hours=12)


def add(
    engine: Engine,
    topic: str,
    text: str,
    published: datetime,
    *,
    offered: bool = True,
    **data: Any,
) -> str:
    """One notification and its message in ``topic`` (offered to subscribers at ``published``,
    unless not ``offered`` yet); the message id."""
    note = f"ntf_{topic}_{text}"
    row = message_row(
        topic=topic, notification_id=note, published=published, keep=KEEP, title=None,
        message=text, priority=3, data=data or None,
    )  # fmt: skip
    row["published_at"] = published if offered else None
    with engine.begin() as conn:
        conn.execute(
            insert(NOTIFICATIONS),
            {"id": note, "channel": "inbox", "message": text, "recipients": [topic],
             "created_at": published, "priority": 3},
        )  # fmt: skip
        conn.execute(insert(MESSAGES), row)
    return str(row["id"])


def texts(found: list[Any]) -> list[str]:
    return [m.message for m in found]


def test_since_reads_what_ntfy_would(engine: Engine) -> None:
    store = InboxStore(engine)
    first = add(engine, "phone", "one", NOW - timedelta(hours=2))
    add(engine, "phone", "two", NOW - timedelta(minutes=30))
    add(engine, "desk", "elsewhere", NOW - timedelta(minutes=20))
    third = add(engine, "phone", "three", NOW - timedelta(minutes=10))
    add(engine, "phone", "later", NOW + timedelta(hours=1), offered=False)  # scheduled
    read = store.read
    assert texts(read(["phone"], EVERYTHING, now=NOW)) == ["one", "two", "three"]
    assert texts(read(["phone"], NOTHING, now=NOW)) == []
    assert texts(read(["phone"], Since(SinceKind.latest), now=NOW)) == ["three"]
    assert texts(read(["phone"], Since(SinceKind.id, message_id=first), now=NOW)) == [
        "two",
        "three",
    ]
    assert texts(read(["phone"], Since(SinceKind.id, message_id=third), now=NOW)) == []
    hour_ago = Since(SinceKind.time, time=NOW - timedelta(hours=1))
    assert texts(read(["phone"], hour_ago, now=NOW)) == ["two", "three"]
    assert texts(read(["phone", "desk"], hour_ago, now=NOW)) == ["two", "elsewhere", "three"]
    assert texts(read(["phone"], EVERYTHING, now=NOW, scheduled=True))[-1] == "later"
    # An id no longer kept: everything kept, as ntfy answers.
    gone = Since(SinceKind.id, message_id="AAAAAAAAAAAA")
    assert texts(read(["phone"], gone, now=NOW)) == ["one", "two", "three"]
    # Once its run offers it, a scheduled message comes after the last one seen before.
    with engine.begin() as conn:
        [later] = [
            m
            for m in read(["phone"], EVERYTHING, now=NOW, scheduled=True)
            if m.published_at is None
        ]
        mark_published(conn, [(later.seq, NOW + timedelta(hours=1))])
    after = NOW + timedelta(hours=2)
    assert texts(read(["phone"], Since(SinceKind.id, message_id=third), now=after)) == ["later"]


def test_replays_follow_the_order_of_publication_not_of_storage(engine: Engine) -> None:
    """A message stored first but offered second comes second: "since the last one I got"
    then repeats nothing and misses nothing."""
    store = InboxStore(engine)
    first = add(engine, "phone", "stored first", NOW, offered=False)
    second = add(engine, "phone", "stored second", NOW)
    assert texts(store.read(["phone"], EVERYTHING, now=NOW)) == ["stored second"]
    by_id = {m.id: m for m in store.read(["phone"], EVERYTHING, now=NOW, scheduled=True)}
    with engine.begin() as conn:
        mark_published(conn, [(by_id[first].seq, NOW + timedelta(seconds=1))])
    assert texts(store.read(["phone"], EVERYTHING, now=NOW)) == ["stored second", "stored first"]
    after = Since(SinceKind.id, message_id=second)
    assert texts(store.read(["phone"], after, now=NOW)) == ["stored first"]
    assert texts(store.read(["phone"], Since(SinceKind.id, message_id=first), now=NOW)) == []


def test_gotify_paging_goes_backwards_by_seq(engine: Engine) -> None:
    store = InboxStore(engine)
    for index in range(5):
        add(engine, "phone", f"m{index}", NOW - timedelta(minutes=10 - index))
    newest = store.page(["phone"], now=NOW, limit=2)
    assert texts(newest) == ["m4", "m3"]
    older = store.page(["phone"], now=NOW, limit=2, before=newest[-1].seq)
    assert texts(older) == ["m2", "m1"]
    assert texts(store.page(None, now=NOW, limit=10)) == ["m4", "m3", "m2", "m1", "m0"]


def test_prune_drops_expired_and_keeps_each_topic_bounded(engine: Engine) -> None:
    store = InboxStore(engine)
    add(engine, "old", "expired", NOW - timedelta(hours=13))
    for index in range(6):
        add(engine, "busy", f"b{index}", NOW - timedelta(minutes=10 - index))
    add(engine, "quiet", "q", NOW)
    with engine.begin() as conn:
        assert prune_messages(conn, now=NOW, per_topic=4) == 3
    assert texts(store.read(["busy"], EVERYTHING, now=NOW)) == ["b2", "b3", "b4", "b5"]
    assert texts(store.read(["quiet"], EVERYTHING, now=NOW)) == ["q"]
    assert store.topics() == ["busy", "quiet"]


def test_publishers_links_and_tags_are_checked_and_bounded() -> None:
    row = message_row(
        topic="t", notification_id="n", published=NOW, keep=KEEP, title=None, message="m",
        priority=3,
        data={"tags": ["ok", 5, "x" * 500] + ["t"] * 40, "click": "javascript:alert(1)",
              "icon": "https://example.org/i.png", "attach": "https://example.org/f.pdf",
              "markdown": True},
    )  # fmt: skip
    assert row["tags"][:2] == ["ok", "x" * 100] and len(row["tags"]) == 20
    assert row["click"] is None  # only http(s) links reach a subscriber's app
    assert row["extras"] == {
        "markdown": True,
        "icon": "https://example.org/i.png",
        "attachment": {"name": "f.pdf", "url": "https://example.org/f.pdf"},
    }
    assert len(row["id"]) == 12 and row["id"].isalnum()


@pytest.mark.parametrize(
    ("text", "poll", "kind"),
    [
        (None, False, SinceKind.none),
        (None, True, SinceKind.all),
        ("all", False, SinceKind.all),
        ("latest", False, SinceKind.latest),
        ("none", True, SinceKind.none),
        ("AbCdEf123456", False, SinceKind.id),
        ("1796583604", False, SinceKind.time),
        ("10m", False, SinceKind.time),
        ("1h30m", False, SinceKind.time),
    ],
)
def test_parse_since(text: str | None, poll: bool, kind: SinceKind) -> None:
    assert parse_since(text, poll=poll, now=NOW).kind is kind


@pytest.mark.parametrize(
    "text", ["yesterday", "10x", "-5m", "9" * 40, "1e9", "²", "10m\x00", "m", "1.5.5s", "99999999h"]
)
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_since(text, poll=False, now=NOW)


def test_go_durations() -> None:
    assert parse_go_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_go_duration("1.5s") == timedelta(seconds=1.5)
    assert parse_go_duration("2d") == timedelta(days=2)


def test_a_message_id_is_ntfys_shape_and_follows_from_notification_and_topic() -> None:
    ids = {message_id_of(f"ntf_{n}", topic) for n in range(2000) for topic in ("a", "b")}
    assert len(ids) == 4000
    assert all(len(i) == 12 and i.isascii() and i.isalnum() for i in ids)
    assert message_id_of("ntf_1", "a") == message_id_of("ntf_1", "a") != message_id_of("ntf_1", "b")
