"""Secrets at rest: an ad-hoc recipient that carries a token (a webhook or Apprise URL) is stored
encrypted in its run's arguments, and decrypted only to deliver it.

Fernet (from ``cryptography``: AES-128-CBC and HMAC-SHA256) is authenticated: a value altered,
or encrypted with another key, is refused, never decrypted into something else. The keys come
from ``secret_key`` (``NOTIFYD_SECRET_KEY``: one or more keys, comma-separated, the first one
encrypting, every one decrypting) or else from the key file in the data directory, made with
mode 0600 on first start. ``rotate`` re-encrypts every stored value with a new key.
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection

from notifyd.config import Settings
from notifyd.errors import ConfigError
from notifyd.tracking import admin

ENCRYPTED_PREFIX = "enc:v1:"
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


class SecretBox:
    """Encrypts and decrypts stored secrets with the configured keys."""

    def __init__(self, keys: list[str], *, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._set(keys)

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> SecretBox:
        """The box of a process: its keys from the settings or the key file."""
        keys, path = load_keys(settings, create=create)
        return cls(keys, path=path)

    def _set(self, keys: list[str]) -> None:
        self.keys = keys
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @staticmethod
    def is_encrypted(value: str) -> bool:
        """Whether ``value`` was stored encrypted (values stored before encryption are clear)."""
        return value.startswith(ENCRYPTED_PREFIX)

    def encrypt(self, value: str) -> str:
        """``value`` encrypted with the first key, as it is stored."""
        return ENCRYPTED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        """The clear value of a stored one; SecretKeyError when no key of this process opens it."""
        if not self.is_encrypted(value):
            return value
        token = value.removeprefix(ENCRYPTED_PREFIX).encode()
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            pass
        if self._reload():  # the key file was rotated while this process ran
            with suppress(InvalidToken):
                return self._fernet.decrypt(token).decode()
        raise SecretKeyError(
            "cannot decrypt the stored recipient: this process's secret key is not the one it "
            "was encrypted with (every process sharing a store needs the same NOTIFYD_SECRET_KEY "
            "or key file)"
        )

    def _reload(self) -> bool:
        if self.path is None:
            return False
        with self._lock:
            try:
                keys = _parse(self.path.read_text(), str(self.path))
            except (OSError, SecretKeyError):
                return False
            if keys == self.keys:
                return False
            self._set(keys)
            return True


def reencrypt(conn: Connection, *, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every stored secret (clear ones from before encryption too) with ``new``;
    how many were rewritten. SecretKeyError, and nothing written, when ``old`` cannot open one."""

    def rewrite(value: Any) -> Any:
        return new.encrypt(old.decrypt(value)) if isinstance(value, str) else value

    return admin.rewrite_argument(conn, name=SECRET_ARGUMENT, rewrite=rewrite)
