"""The inbox's messages in the store: staged with their notification, read back by subscribers.

A message is stored with its notification and *published* when its run offers it to the live
subscribers (``published_at``). Replays follow the order of publication, the order in which
live subscribers saw the messages: so a subscriber that asks for what came after the last
message it got receives exactly what it missed, a delayed message that fell due meanwhile
included, and nothing it already has. A message not yet published is not replayed (it comes
live when its run offers it), except to those who ask for scheduled ones.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)

from notifyd.inbox.models import InboxMessage

MESSAGES = InboxMessage.__table__  # type: ignore[attr-defined]
TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")  # ntfy's topic names
MESSAGE_ID = re.compile(r"^[A-Za-z0-9]{12}$")  # ntfy's message ids
_ALPHABET = string.ascii_letters + string.digits
MAX_TAGS = 20
MAX_TAG_CHARS = 100
MAX_LINK_CHARS = 2048
# At most this many messages in one read (a poll of a busy topic, a reconnect after a day).
MAX_READ = 5000
# The advisory lock publishers take turns under: this class, and the schema's hash (two stores
# in one database do not wait for each other).
PUBLICATION_LOCK = 0x6E746679


def new_message_id() -> str:
    """A random 12-character id, as ntfy makes them (its clients check the shape)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def message_id_of(notification_id: str, topic: str) -> str:
    """The id of the message a notification makes in ``topic``: 12 characters in ntfy's shape,
    derived from both, so that the publishing answer (a repeat of it too) can name the message
    before it is stored, and a client can then ask for ``since=<that id>``."""
    digest = int.from_bytes(hashlib.blake2b(f"{notification_id}/{topic}".encode()).digest()[:9])
    chars = []
    for _ in range(12):
        digest, index = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def check_topic(name: str) -> str:
    """``name`` if it is a topic name (1-64 of letters, digits, ``-`` and ``_``), else ValueError."""
    if not TOPIC.match(name):
        raise ValueError("a topic is 1 to 64 letters, digits, '-' or '_'")
    return name


def _link(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value[:MAX_LINK_CHARS]
    return None


def message_row(
    *,
    topic: str,
    notification_id: str,
    published: datetime,
    keep: timedelta,
    title: str | None,
    message: str,
    priority: int,
    data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The row a notification makes in ``topic``: ntfy's tags, click, markdown, icon and
    attachment link come from its ``data`` (where the ntfy endpoint puts them), checked and
    bounded, since subscribers' apps open them."""
    data = data or {}
    raw_tags = data.get("tags")
    tags = (
        [str(t)[:MAX_TAG_CHARS] for t in raw_tags if isinstance(t, str)][:MAX_TAGS]
        if isinstance(raw_tags, list)
        else None
    )
    extras: dict[str, Any] = {}
    if data.get("markdown") is True:
        extras["markdown"] = True
    icon = _link(data.get("icon"))
    if icon:
        extras["icon"] = icon
    attach = _link(data.get("attach"))
    if attach:
        name = data.get("filename")
        extras["attachment"] = {
            "name": name[:255] if isinstance(name, str) and name else attach.rsplit("/", 1)[-1],
            "url": attach,
        }
    return {
        "id": message_id_of(notification_id, topic),
        "topic": topic,
        "notification_id": notification_id,
        "time": published,
        "expires": published + keep,
        "title": title,
        "message": message,
        "priority": priority,
        "tags": tags or None,
        "click": _link(data.get("click")),
        "extras": extras or None,
    }


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as read back: what every subscriber dialect renders."""

    seq: int
    id: str
    topic: str
    time: datetime
    expires: datetime
    title: str | None
    message: str
    priority: int
    tags: tuple[str, ...]
    click: str | None
    extras: Mapping[str, Any]
    published_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> StoredMessage:
        """From an ``inbox_message`` row."""
        return cls(
            row["seq"],
            row["id"],
            row["topic"],
            row["time"],
            row["expires"],
            row["title"],
            row["message"],
            row["priority"],
            tuple(row["tags"] or ()),
            row["click"],
            row["extras"] or {},
            row["published_at"],
        )


class SinceKind(Enum):
    """What a subscriber asks for besides the live messages."""

    none = "none"
    all = "all"
    latest = "latest"
    time = "time"
    id = "id"


@dataclass(frozen=True)
class Since:
    """ntfy's ``since``: nothing, everything kept, the latest, from a time, after a message."""

    kind: SinceKind
    time: datetime | None = None
    message_id: str | None = None


NOTHING = Since(SinceKind.none)
EVERYTHING = Since(SinceKind.all)


PUBLISHED = MESSAGES.c.published_at
_NEWEST_FIRST = (PUBLISHED.desc(), MESSAGES.c.seq.desc())


def _visible(now: datetime, scheduled: bool) -> list[Any]:
    # Unexpired and published; with ``scheduled``, those waiting for their run too.
    return (
        [MESSAGES.c.expires > now]
        if scheduled
        else [MESSAGES.c.expires > now, PUBLISHED.is_not(None)]
    )


def _after(conn: Connection, published: datetime, seq: int) -> Any:
    if conn.dialect.name == "postgresql":
        return tuple_(PUBLISHED, MESSAGES.c.seq) > tuple_(published, seq)
    column = MESSAGES.c.published_at
    return or_(column > published, and_(column == published, MESSAGES.c.seq > seq))


class InboxStore:
    """Reads and prunes the inbox (writes go with their notification, through the submitter)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(
        self,
        topics: Sequence[str] | None,
        since: Since,
        *,
        now: datetime,
        scheduled: bool = False,
        limit: int = MAX_READ,
    ) -> list[StoredMessage]:
        """The kept messages of ``topics`` (None: every topic) that ``since`` asks for, in the
        order they were published (the unpublished, with ``scheduled``, last)."""
        if since.kind is SinceKind.none or (topics is not None and not topics):
            return []
        where = _visible(now, scheduled)
        if topics is not None:
            where.append(MESSAGES.c.topic.in_(list(topics)))
        # Newest first with nulls (not yet published) first, then reversed: the newest ``limit``.
        order = (PUBLISHED.is_not(None), *_NEWEST_FIRST)
        with self.engine.connect() as conn:
            if since.kind is SinceKind.latest:
                where.append(PUBLISHED.is_not(None))
                rows = conn.execute(
                    select(MESSAGES).where(*where).order_by(*_NEWEST_FIRST).limit(1)
                )
                return [StoredMessage.from_row(row) for row in rows.mappings()]
            if since.kind is SinceKind.time and since.time is not None:
                where.append(or_(MESSAGES.c.published_at >= since.time, PUBLISHED.is_(None)))
            elif since.kind is SinceKind.id:
                mark = conn.execute(
                    select(PUBLISHED, MESSAGES.c.seq).where(MESSAGES.c.id == since.message_id)
                ).first()
                # A message no longer kept, or never seen here: everything kept, as ntfy does.
                if mark is not None and mark.published_at is not None:
                    where.append(
                        or_(_after(conn, mark.published_at, mark.seq), PUBLISHED.is_(None))
                    )
            rows = conn.execute(select(MESSAGES).where(*where).order_by(*order).limit(limit))
            found = [StoredMessage.from_row(row) for row in rows.mappings()]
        found.reverse()
        return found

    def by_seq(self, seqs: Iterable[int]) -> list[StoredMessage]:
        """The messages with these ``seq`` (published elsewhere, announced by the relay)."""
        wanted = sorted(set(seqs))
        if not wanted:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(MESSAGES).where(MESSAGES.c.seq.in_(wanted)).order_by(MESSAGES.c.seq)
            ).mappings()
            return [StoredMessage.from_row(row) for row in rows]

    def of_notification(self, notification_id: str, topic: str) -> StoredMessage | None:
        """The message a notification made in ``topic`` (what its inbox run offers)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(MESSAGES).where(
                        MESSAGES.c.notification_id == notification_id, MESSAGES.c.topic == topic
                    )
                )
                .mappings()
                .first()
            )
        return StoredMessage.from_row(row) if row is not None else None

    def page(
        self, topics: Sequence[str] | None, *, now: datetime, limit: int, before: int = 0
    ) -> list[StoredMessage]:
        """Gotify's paging: the newest ``limit`` messages of ``topics`` (None: of every topic)
        with ``seq`` below ``before``, newest first."""
        if topics is not None and not topics:
            return []
        where = _visible(now, False)
        if topics is not None:
            where.append(MESSAGES.c.topic.in_(list(topics)))
        if before > 0:
            where.append(MESSAGES.c.seq < before)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(MESSAGES).where(*where).order_by(MESSAGES.c.seq.desc()).limit(limit)
            ).mappings()
            return [StoredMessage.from_row(row) for row in rows]

    def published_after(
        self, after: tuple[datetime, int] | None, *, limit: int = MAX_READ
    ) -> list[StoredMessage]:
        """Every topic's messages published after ``after`` ((published_at, seq); None: all),
        in the order of publication."""
        order = (MESSAGES.c.published_at, MESSAGES.c.seq)
        query = select(MESSAGES).where(MESSAGES.c.published_at.is_not(None))
        if after is not None:
            query = query.where(tuple_(*order) > tuple_(*after))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*order).limit(limit)).mappings()
            return [StoredMessage.from_row(row) for row in rows]

    def last_published(self) -> tuple[datetime, int] | None:
        """(published_at, seq) of the message published last, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(MESSAGES.c.published_at, MESSAGES.c.seq)
                .where(MESSAGES.c.published_at.is_not(None))
                .order_by(MESSAGES.c.published_at.desc(), MESSAGES.c.seq.desc())
                .limit(1)
            ).first()
        return (row[0], row[1]) if row is not None else None

    def topics(self) -> list[str]:
        """The topics that hold messages now."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(MESSAGES.c.topic).distinct().order_by(MESSAGES.c.topic)
                ).scalars()
            )


def delete_message(conn: Connection, seq: int, topics: Sequence[str] | None) -> bool:
    """Delete message ``seq`` (of one of ``topics``, when given); whether it existed."""
    where = [MESSAGES.c.seq == seq]
    if topics is not None:
        where.append(MESSAGES.c.topic.in_(list(topics)))
    return bool(conn.execute(delete(MESSAGES).where(*where)).rowcount)


def mark_published(conn: Connection, stamps: Sequence[tuple[int, datetime]]) -> None:
    """Record when each message (by seq) was offered to the live subscribers."""
    conn.execute(
        update(MESSAGES)
        .where(MESSAGES.c.seq == bindparam("b_seq"))
        .values(published_at=bindparam("b_at")),
        [{"b_seq": seq, "b_at": at} for seq, at in stamps],
    )


@dataclass(frozen=True, slots=True)
class Taken:
    """A message asked for by its notification and topic: None when it is gone (deleted by its
    reader, or pruned), and whether an earlier attempt had already published it."""

    message: StoredMessage | None
    before: bool = False


def take_for_publication(
    conn: Connection, wanted: Sequence[tuple[str, str, datetime]], *, store_clock: bool = False
) -> list[Taken]:
    """Read the messages that notifications made in topics, ``(notification id, topic, when)``
    each, and record as published then those that were not yet: one read and one write.

    With ``store_clock`` (PostgreSQL, several processes), publishers take turns under one lock
    held to their commit and are stamped by the database's clock once they hold it, the given
    times ignored: stamps then follow the order of commits, so a reader that sees a stamp has
    every earlier one too (``InboxStore.published_after``).
    """
    if store_clock:
        schema = func.hashtext(func.current_schema())
        conn.execute(select(func.pg_advisory_xact_lock(PUBLICATION_LOCK, schema)))
        base: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
        wanted = [
            (notification_id, topic, base + timedelta(microseconds=index))
            for index, (notification_id, topic, _) in enumerate(wanted)
        ]
    ids = sorted({notification_id for notification_id, _, _ in wanted})
    rows = conn.execute(select(MESSAGES).where(MESSAGES.c.notification_id.in_(ids))).mappings()
    found = {(row["notification_id"], row["topic"]): StoredMessage.from_row(row) for row in rows}
    taken: list[Taken] = []
    stamps: list[tuple[int, datetime]] = []
    for notification_id, topic, at in wanted:
        message = found.get((notification_id, topic))
        if message is None or message.published_at is not None:
            taken.append(Taken(message, before=message is not None))
            continue
        stamped = found[(notification_id, topic)] = replace(message, published_at=at)
        stamps.append((message.seq, at))
        taken.append(Taken(stamped))
    if stamps:
        mark_published(conn, stamps)
    return taken


def delete_topics(conn: Connection, topics: Sequence[str]) -> int:
    """Delete every message of ``topics``; how many there were."""
    return int(conn.execute(delete(MESSAGES).where(MESSAGES.c.topic.in_(list(topics)))).rowcount)


def prune_messages(conn: Connection, *, now: datetime, per_topic: int) -> int:
    """Delete expired messages and, in a topic holding more than ``per_topic``, the oldest."""
    removed = int(conn.execute(delete(MESSAGES).where(MESSAGES.c.expires <= now)).rowcount)
    return removed + _trim(conn, per_topic)


def _trim(conn: Connection, per_topic: int) -> int:
    crowded = conn.execute(
        select(MESSAGES.c.topic).group_by(MESSAGES.c.topic).having(func.count() > per_topic)
    ).scalars()
    removed = 0
    for topic in list(crowded):
        # The oldest go by seq (the order they were stored); one waiting for its run stays.
        keep_from = conn.execute(
            select(MESSAGES.c.seq)
            .where(MESSAGES.c.topic == topic)
            .order_by(MESSAGES.c.seq.desc())
            .offset(per_topic - 1)
            .limit(1)
        ).scalar()
        if keep_from is None:
            continue
        removed += int(
            conn.execute(
                delete(MESSAGES).where(
                    MESSAGES.c.topic == topic,
                    MESSAGES.c.seq < keep_from,
                    PUBLISHED.is_not(None),
                )
            ).rowcount
        )
    return removed


def parse_since(value: str | None, *, poll: bool, now: datetime) -> Since:
    """ntfy's ``since``: ``all``, ``latest``, ``none``, a message id, a Unix time or a duration
    (``10m``, ``1h30m``, Go's units); ValueError when it is none of them."""
    if value is None or value == "":
        return EVERYTHING if poll else NOTHING
    if value in ("all", "latest", "none"):
        return Since(SinceKind(value))
    if MESSAGE_ID.match(value):
        return Since(SinceKind.id, message_id=value)
    if value.isascii() and value.isdigit():
        try:
            return Since(SinceKind.time, time=datetime.fromtimestamp(int(value), UTC))
        except (OverflowError, OSError, ValueError):
            raise ValueError("a Unix time out of range") from None
    ago = parse_go_duration(value)
    try:
        return Since(SinceKind.time, time=now - ago)
    except OverflowError:
        return EVERYTHING


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
MAX_SINCE = timedelta(days=3650)


def parse_go_duration(value: str) -> timedelta:
    """A duration as Go's ``time.ParseDuration`` reads it (``90s``, ``1h30m``), plus ``d``;
    ValueError for anything else or for more than ten years."""
    if not value or len(value) > 64 or not value.isascii():
        raise ValueError("not a duration")
    position, seconds = 0, 0.0
    for match in _GO_PART.finditer(value):
        if match.start() != position:
            raise ValueError("not a duration")
        seconds += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise ValueError("not a duration")
    if seconds > MAX_SINCE.total_seconds():
        raise ValueError("too long ago")
    return timedelta(seconds=seconds)
