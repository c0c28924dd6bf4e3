"""Hide secrets in what is shown: argument values under secret-sounding keys, URL credentials."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

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


# A notifyd token (``ntd_`` and 43 URL-safe characters), or enough of one to be worth hiding.
_TOKEN_SHAPE = re.compile(r"ntd_[A-Za-z0-9_-]{8,}")
# Decoding passes before giving up on a value encoded again and again (``%25256E``...).
_DECODE_PASSES = 4


def _decoded(text: str, *, plus: bool) -> str:
    for _ in range(_DECODE_PASSES):
        decoded = unquote_plus(text) if plus else unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _token_shaped(text: str, *, plus: bool = True) -> bool:
    return _TOKEN_SHAPE.search(_decoded(text, plus=plus)) is not None


def redact_target(target: str) -> str:
    """A request target (``/path?query``) as the access log may show it: every path segment
    and query name or value with a token's shape (after percent-decoding) masked, and the
    values of token-like parameters (ntfy's ``?auth=``, Gotify's ``?token=``); a query part
    without ``=`` that could be a secret is masked whole."""
    path, sep, query = target.partition("?")
    path = "/".join(MASK if _token_shaped(s, plus=False) else s for s in path.split("/"))
    if not sep:
        return path
    masked = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        plain = _decoded(name, plus=True)
        secret_name = _QUERY_SECRET.search(plain) is not None
        shown_name = MASK if _token_shaped(name) else name
        if eq:
            secret = secret_name or _token_shaped(value)
            masked.append(f"{shown_name}={MASK if secret else value}")
        else:
            hidden = secret_name or len(plain) > 32 or shown_name == MASK
            masked.append(MASK if hidden else name)
    return f"{path}?{'&'.join(masked)}"
