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


_URL_IN_TEXT = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]{1,20}://)(?:[^\s/?#@]*@)?([^\s/?#\"'<>]*)[^\s\"'<>]*"
)
_QUERY_SECRET = re.compile(r"pass|secret|token|auth|key|credential|sig|session|code", re.I)


def redact_urls_in(text: str) -> str:
    """``text`` with every URL cut to its scheme and host: paths, queries and userinfo of
    webhook and Apprise URLs carry tokens (for log lines written by libraries)."""
    return _URL_IN_TEXT.sub(lambda m: f"{m[1]}{m[2]}/{MASK}" if m[0] != m[1] + m[2] else m[0], text)


def redact_query(target: str) -> str:
    """A request target (``/path?query``) with the values of token-like parameters masked
    (ntfy's ``?auth=``, Gotify's ``?token=``); an unparsable query is masked whole."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    masked = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        if eq and not _QUERY_SECRET.search(name):
            masked.append(pair)
        elif eq:
            masked.append(f"{name}={MASK}")
        else:
            masked.append(MASK if _QUERY_SECRET.search(name) or len(name) > 32 else name)
    return f"{path}?{'&'.join(masked)}"
