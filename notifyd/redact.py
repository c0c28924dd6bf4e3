"""Hide secrets in what is shown: argument values under secret-sounding keys, URL credentials."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
_SECRET_KEY = re.compile(r"pass|secret|token|auth|api[_-]?key|credential|signature", re.I)


def redact_url(url: str) -> str:
    """Mask the password (or the whole userinfo) of a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=masked))


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` with secrets masked."""
    if key is not None and _SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
