"""Who is looking at the dashboard: sessions held server-side, their cookie, and CSRF checks.

The cookie carries only a random session key (``HttpOnly``, ``SameSite=Strict``, path ``/ui``);
the server keeps, under the key's hash, the token the operator logged in with, so that every
request checks the token again (a revoked token ends its sessions within the token cache's
period) and the token itself is never in a cookie, a URL or local storage. Sessions live in the
process's memory: a restart logs everyone out, and each server of a scale-out keeps its own.

Every POST carries the session's CSRF token in a hidden field and must come from this origin
(``Origin``, else ``Referer``): with ``SameSite=Strict`` either alone would do; both are checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from notifyd.api.auth import OPEN, Guard, Principal, get_guard
from notifyd.errors import Forbidden
from notifyd.tokens import Scope

COOKIE = "notifyd_ui"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600
"""A session ends this long after login, whatever happens meanwhile."""
MAX_SESSIONS = 10_000
STATE_KEY = "notifyd_ui_sessions"


@dataclass(frozen=True)
class Session:
    """One logged-in browser (or, while the API is open, one anonymous one)."""

    token: str | None  # None: made in open mode, valid only while the API stays open
    name: str | None
    scope: Scope
    csrf: str
    expires: float


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and the session's CSRF token for its forms."""

    principal: Principal
    csrf: str

    @property
    def can_act(self) -> bool:
        """Only an admin token retries and cancels."""
        return self.principal.scope == Scope.admin

    @property
    def name(self) -> str | None:
        """The token's name (None in open mode)."""
        return self.principal.name


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Sessions:
    """The dashboard's sessions, by the hash of their cookie's key."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal, token: str | None) -> tuple[str, Session]:
        """A new session; returns the cookie's key (the only copy) and the session."""
        key = secrets.token_urlsafe(32)
        session = Session(
            token=token,
            name=principal.name,
            scope=principal.scope,
            csrf=secrets.token_urlsafe(32),
            expires=self._clock() + SESSION_SECONDS,
        )
        with self._lock:
            self._expire()
            if len(self._by_hash) >= MAX_SESSIONS:  # keep memory bounded: drop the oldest
                del self._by_hash[next(iter(self._by_hash))]
            self._by_hash[_key_hash(key)] = session
        return key, session

    def get(self, key: str | None) -> Session | None:
        """The live session of a cookie's key, or None."""
        if not key:
            return None
        with self._lock:
            session = self._by_hash.get(_key_hash(key))
            if session is not None and session.expires <= self._clock():
                del self._by_hash[_key_hash(key)]
                return None
            return session

    def end(self, key: str | None) -> None:
        """Forget a session (logout)."""
        if key:
            with self._lock:
                self._by_hash.pop(_key_hash(key), None)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._by_hash.items() if s.expires <= now]:
            del self._by_hash[key]


def get_sessions(request: Request) -> Sessions:
    """The app's sessions, set by ``install_ui``."""
    sessions: Sessions = getattr(request.app.state, STATE_KEY)
    return sessions


def open_mode(guard: Guard) -> bool:
    """Whether the API (and so the dashboard) is open: exactly the API's own rule."""
    return guard.is_open()


async def current_viewer(request: Request) -> tuple[Viewer | None, str | None]:
    """The viewer of this request and, when a new open-mode session was made, its cookie key."""
    guard = get_guard(request)
    await guard.tokens.refresh_if_stale()
    sessions = get_sessions(request)
    session = sessions.get(request.cookies.get(COOKIE))
    is_open = open_mode(guard)
    if session is not None:
        if session.token is None:
            if is_open:
                return Viewer(OPEN, session.csrf), None
            return None, None  # a token was created since: open sessions end
        info = guard.tokens.lookup(session.token)
        if info is None:  # revoked since login
            return None, None
        return Viewer(Principal(info.name, info.scope, info.destination), session.csrf), None
    if is_open:
        key, session = sessions.create(OPEN, None)
        return Viewer(OPEN, session.csrf), key
    return None, None


def set_cookie(request: Request, response: Response, key: str) -> None:
    """Give the browser its session cookie."""
    response.set_cookie(
        COOKIE,
        key,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    """Tell the browser to forget its session cookie."""
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this server (``Origin``, else ``Referer``)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def check_csrf(request: Request, viewer: Viewer, submitted: str | None) -> None:
    """Refuse (403) a POST from another origin or without this session's CSRF token."""
    if not same_origin(request):
        raise Forbidden("this form must be sent from the dashboard's own pages")
    if not submitted or not hmac.compare_digest(submitted.encode(), viewer.csrf.encode()):
        raise Forbidden("the form's CSRF token is missing or stale; reload the page")
