"""Secrets at rest: an ad-hoc recipient that carries a token (a webhook or Apprise URL) is stored
encrypted in its run's arguments, and decrypted only to deliver it.

Fernet (from ``cryptography``: AES-128-CBC and HMAC-SHA256) is authenticated: a value altered,
or encrypted with another key, is refused, never decrypted into something else. The keys come
from ``secret_key`` (``NOTIFYD_SECRET_KEY``: one or more keys, comma-separated, the first one
encrypting, every one decrypting) or else from the key file in the data directory, made with
mode 0600 on first start of an empty store. Each stored value names the key that encrypted it
(``enc:v2:<key id>:<token>``), so a rotation can tell when no stored value needs an old key;
a process re-reads a changed key file before it encrypts, so new writes use the newest key as
soon as it exists (see notifyd.notifications.keyring).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection

from notifyd.config import Settings
from notifyd.errors import ConfigError
from notifyd.tracking import admin
from notifyd.tracking.models import FINISHED

ENCRYPTED_PREFIX = "enc:"
_V1 = "enc:v1:"  # before key ids: any key may have encrypted it
_V2 = "enc:v2:"
SECRET_ARGUMENT = "secret_recipient"


class SecretKeyError(ConfigError):
    """The secret key is missing, malformed, or not the one a stored value was encrypted with."""

    slug, title = "secret-key", "Secret key problem"


def new_key() -> str:
    """A new random key (32 bytes, URL-safe base64), as ``NOTIFYD_SECRET_KEY`` takes it."""
    return Fernet.generate_key().decode()


def _parse(text: str, where: str) -> list[str]:
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise SecretKeyError(f"{where} holds no key")
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{where}: not a secret key (32 bytes in URL-safe base64, as"
                " `notifyd secrets rotate` makes)"
            ) from None
    return keys


def write_key_file(path: Path, keys: list[str], *, exclusive: bool = False) -> None:
    """Write ``keys`` to ``path``, readable by this user only; atomically unless ``exclusive``
    (then only if no file exists: two processes starting at once keep one key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(keys) + "\n").encode()
    target = path if exclusive else path.with_name(path.name + ".new")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)


def load_keys(settings: Settings, *, create: bool) -> tuple[list[str], Path | None]:
    """The keys, and the file they came from (None: from ``secret_key``); with ``create``, a
    missing key file is made."""
    if settings.secret_key is not None:
        return _parse(settings.secret_key.get_secret_value(), "NOTIFYD_SECRET_KEY"), None
    path = settings.secret_key_file
    if create and not path.exists():
        with suppress(FileExistsError):  # another process made it first: use that one
            write_key_file(path, [new_key()], exclusive=True)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SecretKeyError(
            f"no secret key: {path} does not exist and NOTIFYD_SECRET_KEY is not set"
        ) from None
    return _parse(text, str(path)), path


def key_id(key: str) -> str:
    """A key's public name in stored values: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def stored_key_id(value: str) -> str | None:
    """The id of the key a stored value was encrypted with (None: clear, or from before ids)."""
    if not value.startswith(_V2):
        return None
    kid, sep, _ = value[len(_V2) :].partition(":")
    return kid if sep else None


class SecretBox:
    """Encrypts and decrypts stored secrets with the configured keys; with a key file, follows
    the file as a rotation changes it."""

    def __init__(self, keys: list[str], *, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen = self._signature()
        self._set(keys)

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> SecretBox:
        """The box of a process: its keys from the settings or the key file."""
        keys, path = load_keys(settings, create=create)
        return cls(keys, path=path)

    def _set(self, keys: list[str]) -> None:
        self.keys = keys
        self._by_id = {key_id(key): Fernet(key) for key in keys}
        self.current_id = key_id(keys[0])
        self._fernet = MultiFernet(list(self._by_id.values()))

    @property
    def key_ids(self) -> list[str]:
        """The ids of this box's keys, the encrypting one first."""
        return list(self._by_id)

    @staticmethod
    def is_encrypted(value: str) -> bool:
        """Whether ``value`` was stored encrypted (values stored before encryption are clear)."""
        return value.startswith(ENCRYPTED_PREFIX)

    def encrypt(self, value: str) -> str:
        """``value`` encrypted with the newest key, as it is stored."""
        self._follow_file()
        with self._lock:
            kid, fernet = self.current_id, self._by_id[self.current_id]
        return f"{_V2}{kid}:{fernet.encrypt(value.encode()).decode()}"

    def is_current(self, value: str) -> bool:
        """Whether a stored value is encrypted with the newest key (a rotation has nothing to do)."""
        return stored_key_id(value) == self.current_id

    def decrypt(self, value: str) -> str:
        """The clear value of a stored one; SecretKeyError when no key of this process opens it."""
        if not self.is_encrypted(value):
            return value
        kid = stored_key_id(value)
        if kid is not None:
            token = value[len(_V2) + len(kid) + 1 :].encode()
            if kid not in self._by_id:
                self._reload()  # a rotation may have added it since this process read the file
            fernet = self._by_id.get(kid)
            if fernet is None:
                raise SecretKeyError(
                    f"cannot decrypt the stored recipient: it was encrypted with key {kid}, "
                    f"which this process does not hold (its keys: {', '.join(self.key_ids)}; "
                    "every process sharing a store needs the same NOTIFYD_SECRET_KEY or key file)"
                )
            try:
                return fernet.decrypt(token).decode()
            except InvalidToken:
                raise SecretKeyError(
                    "cannot decrypt the stored recipient: it was altered, or its key was"
                ) from None
        token = value.removeprefix(_V1).encode()
        for _ in range(2):
            with suppress(InvalidToken):
                return self._fernet.decrypt(token).decode()
            if not self._reload():
                break
        raise SecretKeyError(
            "cannot decrypt the stored recipient: this process's secret key is not the one it "
            "was encrypted with (every process sharing a store needs the same NOTIFYD_SECRET_KEY "
            "or key file)"
        )

    def _signature(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _follow_file(self) -> None:
        # A stat per encryption (about a microsecond) is what lets a rotation's new key be used
        # by every running process before the old one is retired.
        if self.path is not None and self._signature() != self._seen:
            self._reload()

    def _reload(self) -> bool:
        if self.path is None:
            return False
        with self._lock:
            seen = self._signature()
            try:
                keys = _parse(self.path.read_text(), str(self.path))
            except (OSError, SecretKeyError):
                return False
            self._seen = seen
            if keys == self.keys:
                return False
            self._set(keys)
            return True


@dataclass(frozen=True)
class KeyUsage:
    """Which keys the stored secrets need: a count per key id (``v1``: from before key ids,
    ``clear``: stored before encryption), and how many of them belong to runs still to deliver."""

    by_key: dict[str, int]
    pending: int

    @property
    def total(self) -> int:
        """How many stored secrets there are."""
        return sum(self.by_key.values())


def _usage_name(value: Any) -> str:
    if not isinstance(value, str) or not SecretBox.is_encrypted(value):
        return "clear"
    return stored_key_id(value) or "v1"


def key_usage(conn: Connection) -> KeyUsage:
    """How many stored secrets each key opens (a scan of the runs holding one)."""
    counts: Counter[str] = Counter()
    pending = 0
    for _, status, value in admin.argument_values(conn, name=SECRET_ARGUMENT):
        name = _usage_name(value)
        counts[name] += 1
        if name != "clear" and status not in FINISHED:
            pending += 1
    return KeyUsage(by_key=dict(counts), pending=pending)


@dataclass(frozen=True)
class Reencrypted:
    """What one re-encryption pass did."""

    rewritten: int
    unreadable: int  # encrypted with a key ``box`` does not hold: left as they are


def reencrypt(conn: Connection, *, box: SecretBox) -> Reencrypted:
    """Re-encrypt with ``box``'s newest key every stored secret not already under it (clear
    ones from before encryption too); values no key of ``box`` opens are counted, not touched."""
    unreadable = 0

    def rewrite(value: Any) -> Any:
        nonlocal unreadable
        if not isinstance(value, str) or box.is_current(value):
            return value
        try:
            return box.encrypt(box.decrypt(value))
        except SecretKeyError:
            unreadable += 1
            return value

    rewritten = admin.rewrite_argument(conn, name=SECRET_ARGUMENT, rewrite=rewrite)
    return Reencrypted(rewritten=rewritten, unreadable=unreadable)
