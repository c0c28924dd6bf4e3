"""The secret key's life over a store: made on the first start of an empty store, refused when
missing over encrypted recipients, rotated while servers run without losing a stored value.

A rotation (``rotate``) puts the new key first in the key file, beside the old ones: every
process re-reads a changed file before it encrypts (notifyd.notifications.secretbox), so from
then on new values use the new key. It then re-encrypts, pass after pass, every stored value
still under an old key, until a pass finds none twice in a row ``settle`` seconds apart (a
value encrypted just before the file changed may still be committing), and only then retires
the old keys from the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, inspect

from notifyd.config import Settings
from notifyd.db import write_session
from notifyd.notifications.secretbox import (
    SECRET_ARGUMENT,
    KeyUsage,
    SecretBox,
    SecretKeyError,
    key_usage,
    reencrypt,
    write_key_file,
)
from notifyd.tracking import admin
from notifyd.tracking.errors import InvalidTransition
from notifyd.tracking.models import FINISHED

SETTLE_SECONDS = 5.0


def _stored_usage(engine: Engine) -> KeyUsage:
    if not inspect(engine).has_table(admin.RUNS.name):
        return KeyUsage(by_key={}, pending=0)  # a store not migrated yet holds nothing
    with engine.connect() as conn:
        return key_usage(conn)


def _encrypted(usage: KeyUsage) -> int:
    return usage.total - usage.by_key.get("clear", 0)


def box_for_store(settings: Settings, engine: Engine) -> SecretBox:
    """The process's box; the key file is made on first start, but never over a store that
    holds values encrypted with a key file that has gone (SecretKeyError, one line)."""
    path = settings.secret_key_file
    if settings.secret_key is None and not path.exists():
        usage = _stored_usage(engine)
        if encrypted := _encrypted(usage):
            raise SecretKeyError(
                f"the secret key file {path} is missing, but the store holds {encrypted} "
                f"recipient(s) encrypted with it ({usage.pending} in runs still to deliver): "
                "restore the file from a backup (or set NOTIFYD_SECRET_KEY to its key), or "
                "start over on purpose with `notifyd secrets reset`"
            )
    return SecretBox.from_settings(settings, create=True)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    key_id: str
    rewritten: int
    passes: int
    retired: list[str]  # ids of the keys no stored value needs any more
    unreadable: int  # values under a key none of the old keys is: left as they were


def rotate(
    engine: Engine,
    current: SecretBox,
    *,
    key: str | None,
    settle: float = SETTLE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Rotation:
    """Re-encrypt every stored secret with ``key`` (or, without one, with ``current``'s first
    key: finishing a rotation of NOTIFYD_SECRET_KEY) and retire the keys no value needs."""
    keys = current.keys if key is None else [key, *(k for k in current.keys if k != key)]
    if current.path is not None:
        write_key_file(current.path, keys)
    box = SecretBox(keys)
    rewritten = passes = unreadable = 0
    quiet = 0
    while quiet < 2:
        with write_session(engine) as session:
            done = reencrypt(session.connection(), box=box)
        passes += 1
        rewritten += done.rewritten
        unreadable = done.unreadable
        quiet = quiet + 1 if done.rewritten == 0 else 0
        if quiet == 1:
            sleep(settle)
    retired = box.key_ids[1:]
    if current.path is not None and retired:
        write_key_file(current.path, keys[:1])
    return Rotation(
        key_id=box.current_id,
        rewritten=rewritten,
        passes=passes,
        retired=retired,
        unreadable=unreadable,
    )


def reset(settings: Settings, engine: Engine, *, now: datetime) -> tuple[SecretBox, int]:
    """Start over on purpose after a key is lost: a new key file (when none exists) and every
    pending run whose recipient no key opens cancelled; the box and how many were cancelled."""
    box = SecretBox.from_settings(settings, create=True)
    cancelled = 0
    with write_session(engine) as session:
        conn = session.connection()
        for run_id, status, value in admin.argument_values(conn, name=SECRET_ARGUMENT):
            if status in FINISHED or not isinstance(value, str):
                continue
            try:
                box.decrypt(value)
            except SecretKeyError:
                try:
                    admin.cancel_run(conn, run_id=run_id, now=now)
                except InvalidTransition:  # running: its worker releases it, then it is due
                    continue
                cancelled += 1
    return box, cancelled
