"""notifyd's own tables (Notification, IdempotencyRecord, ApiToken) and the API's schemas.

Runs and attempts are the tracker's (``notifyd.tracking.models``); their public forms are here.

Kept whole though over 300 lines: ARCHITECTURE.md's one home of the tables and the schemas that
api/, compat/, ui/ and cli/ all speak in; most of its length is the submission's validation.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, WithJsonSchema, field_validator, model_validator
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

from notifyd.config import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    MAX_MESSAGE_CHARS,
    MAX_RECIPIENT_CHARS,
    MAX_RECIPIENTS,
    MAX_SUBJECT_CHARS,
)
from notifyd.timeutil import UTCDateTime, parse_duration, utcnow

# Re-exported: the public schemas below speak of them.
from notifyd.tracking.models import Outcome as Outcome
from notifyd.tracking.models import RunStatus as RunStatus

DEFAULT_PRIORITY = 3
MAX_SCHEDULE = timedelta(days=30)


# A notification's id: this, then a ULID-style id that encodes its ``created_at``
# (``tracking.clock.new_id``), so the primary key's index finds a range of creation times.
NOTIFICATION_ID_PREFIX = "ntf"


class Notification(SQLModel, table=True):
    """A notification as accepted: what to say and to whom."""

    __tablename__ = "notification"

    id: str = Field(primary_key=True, max_length=40)
    channel: str = Field(max_length=40)
    destination: str | None = Field(default=None, max_length=100)
    subject: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    caller: str | None = Field(default=None, max_length=100)
    # No index of its own: the id encodes it (``NOTIFICATION_ID_PREFIX``).
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    priority: int = Field(
        default=DEFAULT_PRIORITY,
        sa_column=Column(Integer, nullable=False, server_default=str(DEFAULT_PRIORITY)),
    )
    send_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class IdempotencyRecord(SQLModel, table=True):
    """The first response to an ``Idempotency-Key``, kept so that a retried request replays it."""

    __tablename__ = "idempotency_record"

    caller: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    notification_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("notification.id", ondelete="CASCADE"), nullable=False
        )
    )
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class ApiToken(SQLModel, table=True):
    """An API token, stored only as its hash."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    token_hash: str = Field(max_length=128, unique=True)
    scope: str = Field(max_length=20)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # The destination a client that names none (Gotify's) sends to with this token.
    destination: str | None = Field(default=None, max_length=100)


# ---- public schemas -------------------------------------------------------------------------


class AttemptPublic(SQLModel):
    """One attempt of a run as the API shows it."""

    number: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: Outcome
    error_type: str | None
    error_message: str | None
    traceback: str | None
    retry_delay_seconds: float | None
    response: dict[str, Any] | None


class TaskRunPublic(SQLModel):
    """A run as the API lists it."""

    id: str
    task_name: str
    notification_id: str | None
    channel: str | None
    recipient: str | None
    status: RunStatus
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    last_error: str | None
    scheduled: bool = Field(
        default=False,
        description="Queued for a later time (send_at/delay): not due before next_attempt_at.",
    )


class TaskRunDetail(TaskRunPublic):
    """A run in full: its (redacted) arguments and every attempt."""

    args: dict[str, Any]
    attempts_detail: list[AttemptPublic]


class TaskPage(SQLModel):
    """One page of runs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[TaskRunPublic]
    next_cursor: str | None


class TaskSummary(BaseModel):
    """A run as the submit response names it."""

    id: str
    channel: str | None
    to: str | None
    status: RunStatus


class NotificationAccepted(BaseModel):
    """What ``POST /v1/notifications`` answers: the notification id and one task per recipient."""

    id: str
    status: str
    tasks: list[TaskSummary]
    send_at: datetime | None = Field(
        default=None, description="When delivery starts, for a scheduled notification."
    )


class NotificationPublic(SQLModel):
    """A notification and the state of its runs."""

    id: str
    channel: str
    destination: str | None
    subject: str | None
    message: str
    data: dict[str, Any] | None
    to: list[str]
    created_at: datetime
    status: str
    tasks: list[TaskSummary]
    priority: int = DEFAULT_PRIORITY
    send_at: datetime | None = None


def _storable(text: str) -> str:
    # Text a database can store: PostgreSQL refuses NUL, every driver refuses lone surrogates.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return text


StorableText = Annotated[str, AfterValidator(_storable)]


def _check_data(data: dict[str, Any]) -> None:
    """Refuse ``data`` nested deeper than MAX_DATA_DEPTH (it could not be read back) or holding
    lone surrogates in a key or a value (no store or peer takes them)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DATA_DEPTH:
                raise ValueError(f"at most {MAX_DATA_DEPTH} levels of nesting")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _surrogate_free(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _surrogate_free(value)


def _surrogate_free(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None


def _within_limits(to: str | list[str]) -> str | list[str]:
    values = [to] if isinstance(to, str) else to
    if len(values) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients per notification")
    if any(len(value) > MAX_RECIPIENT_CHARS for value in values):
        raise ValueError(f"a recipient may have at most {MAX_RECIPIENT_CHARS} characters")
    for value in values:
        _storable(value)
    return to


_RECIPIENT_SCHEMA = {"type": "string", "maxLength": MAX_RECIPIENT_CHARS}
# Checked after the union so that an error names ``to``, not one branch of the union.
Recipients = Annotated[
    str | list[str],
    AfterValidator(_within_limits),
    WithJsonSchema(
        {
            "anyOf": [
                _RECIPIENT_SCHEMA,
                {"type": "array", "items": _RECIPIENT_SCHEMA, "maxItems": MAX_RECIPIENTS},
            ]
        }
    ),
]


def parse_delay(value: str | float) -> timedelta:
    """``30m``, ``2h``, ``1d`` or a number of seconds (``90``, ``"90"``) as a timedelta."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30m or 2h, or a number of seconds")
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a finite, non-negative number of seconds")
        if value > MAX_SCHEDULE.total_seconds():
            raise ValueError(f"at most {MAX_SCHEDULE.days} days ahead")
        return timedelta(seconds=value)
    try:
        found = parse_duration(value)
    except ValueError:
        raise ValueError("must be a duration such as 30m or 2h, or a number of seconds") from None
    if found > MAX_SCHEDULE:
        raise ValueError(f"at most {MAX_SCHEDULE.days} days ahead")
    return found


class NotificationCreate(BaseModel):
    """A notification to send: through ``channel`` (default ``log``) to one or more recipients,
    or to a ``destination`` configured on the server (which brings its channel and recipients)."""

    model_config = {"extra": "forbid"}

    channel: str = Field(default="log", min_length=1, max_length=40)
    to: Recipients | None = None
    destination: str | None = Field(default=None, min_length=1, max_length=100)
    subject: StorableText | None = Field(default=None, max_length=MAX_SUBJECT_CHARS)
    message: StorableText = Field(max_length=MAX_MESSAGE_CHARS)
    data: dict[str, Any] | None = Field(
        default=None,
        description=f"Extra JSON, at most {MAX_DATA_BYTES} bytes serialized and"
        f" {MAX_DATA_DEPTH} levels deep.",
    )
    priority: int = Field(
        default=DEFAULT_PRIORITY,
        ge=1,
        le=5,
        description="1 (min) to 5 (max/urgent), ntfy's scale; 3 is normal.",
    )
    send_at: datetime | None = Field(
        default=None,
        description="Deliver at this time (RFC 3339 with an offset), at most 30 days ahead.",
    )
    delay: str | float | None = Field(
        default=None,
        description='Deliver after this long: "30m", "2h", "1d" or seconds; at most 30 days.',
    )

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:00Z")
        return value

    @field_validator("delay", mode="before")
    @classmethod
    def _not_boolean(cls, value: object) -> object:
        # Before the union is tried: str | float would turn true into 1.0.
        if isinstance(value, bool):
            raise ValueError("must be a duration such as 30m or 2h, or a number of seconds")
        return value

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_delay(value)
        return value

    @field_validator("data")
    @classmethod
    def _data_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        _check_data(value)
        try:
            # NaN and Infinity parse, but are not JSON: PostgreSQL and webhook receivers refuse them.
            size = len(json.dumps(value, allow_nan=False).encode())
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
        if size > MAX_DATA_BYTES:
            raise ValueError(f"at most {MAX_DATA_BYTES} bytes of JSON")
        return value

    @model_validator(mode="after")
    def _to_or_destination(self) -> NotificationCreate:
        if (self.to is None) == (self.destination is None):
            raise ValueError("give either to (recipients) or destination (a configured name)")
        if self.send_at is not None and self.delay is not None:
            raise ValueError("give send_at or delay, not both")
        return self

    def run_at(self, now: datetime) -> datetime | None:
        """When the first attempt is due, or None for at once; InvalidInput-worthy ValueError
        when it is more than 30 days ahead."""
        if self.delay is not None:
            delay = parse_delay(self.delay)
            return now + delay if delay > timedelta(0) else None
        if self.send_at is None:
            return None
        if self.send_at - now > MAX_SCHEDULE:
            raise ValueError(f"send_at: at most {MAX_SCHEDULE.days} days ahead")
        return self.send_at if self.send_at > now else None

    def recipients(self) -> list[str]:
        """``to`` as a list, in order, without repeats."""
        if self.to is None:
            return []
        values = [self.to] if isinstance(self.to, str) else list(self.to)
        return list(dict.fromkeys(values))


class TaskStats(SQLModel):
    """Run counts by status and by channel, and how long the oldest queued run has waited."""

    by_status: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    oldest_queued_at: datetime | None
    oldest_queued_age_seconds: float | None
