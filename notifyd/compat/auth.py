"""How other tools present a notifyd token, and who that makes the caller.

- ``Authorization: Bearer <token>``;
- ``Authorization: Basic`` with the token as the password (any user name; ntfy, Alertmanager's
  ``basic_auth`` and Grafana send this);
- ntfy's ``?auth=``: the base64url of the whole ``Authorization`` value;
- Gotify's ``X-Gotify-Key`` header or ``?token=``.

The check itself is the API's (the token cache, the failure and rate limits, open loopback mode).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fastapi import Request
from starlette.requests import HTTPConnection

from notifyd.api.auth import Principal, client_host, get_guard
from notifyd.errors import Forbidden, InvalidInput, Unauthorized
from notifyd.runtime import Runtime
from notifyd.tokens import Scope

SENDERS = (Scope.send, Scope.admin)


@dataclass(frozen=True)
class Caller:
    """The authenticated sender, and the destination its token is bound to (if any)."""

    principal: Principal
    destination: str | None = None

    @property
    def name(self) -> str | None:
        """The token's name (None in open mode)."""
        return self.principal.name

    def check_destination(self, name: str) -> None:
        """A token bound to a destination sends there only."""
        if self.destination is not None and self.destination != name:
            raise Forbidden(
                f"token {self.name!r} is bound to destination {self.destination!r}, not {name!r}"
            )


def token_from_authorization(value: str | None) -> str | None:
    """The token in an ``Authorization`` value: Bearer, or Basic with it as the password."""
    if not value or not value.strip():
        return None
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, ValueError):
            raise Unauthorized("malformed Basic credentials") from None
        user, _, password = decoded.partition(":")
        # ntfy's clients put a token as the password with an empty user; some tools the reverse.
        return password or user or None
    raise Unauthorized("send the token as `Bearer <token>` or as the password of Basic auth")


def token_from_auth_param(value: str) -> str | None:
    """ntfy's ``?auth=``: the base64url (padding optional) of an ``Authorization`` value."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise Unauthorized("the auth parameter is not base64url") from None
    return token_from_authorization(raw)


async def authenticate(request: Request, token: str | None) -> Caller:
    """The caller presenting ``token``, allowed to send; Unauthorized / Forbidden / RateLimited."""
    guard = get_guard(request)
    principal = await guard.authenticate(client_host(request), token)
    if principal.scope not in SENDERS:
        raise Forbidden(
            f"sending needs a token with scope send or admin; {principal.name!r} has "
            f"{principal.scope}"
        )
    info = guard.tokens.lookup(token) if token and principal.name is not None else None
    return Caller(principal, info.destination if info is not None else None)


async def hook_caller(request: Request) -> Caller:
    """A webhook sender: Bearer, or Basic with the token as the password."""
    return await authenticate(
        request, token_from_authorization(request.headers.get("authorization"))
    )


READERS = (Scope.read, Scope.admin)


@dataclass(frozen=True)
class Reader:
    """An authenticated subscriber, and the topics it may read (None: every topic)."""

    principal: Principal
    topics: frozenset[str] | None = None

    @property
    def name(self) -> str | None:
        """The token's name (None in open mode)."""
        return self.principal.name

    def may_read(self, topic: str) -> bool:
        """Whether this reader may read ``topic``."""
        return self.topics is None or topic in self.topics

    def check_topics(self, topics: list[str]) -> None:
        """Forbidden naming the first topic this reader may not read."""
        for topic in topics:
            if not self.may_read(topic):
                raise Forbidden(
                    f"token {self.name!r} may read the topics of destination "
                    f"{self.principal.destination!r} only, not {topic!r}"
                )


def reader_for(principal: Principal, runtime: Runtime) -> Reader:
    """What ``principal`` may read: every topic with scope read or admin, its destination's
    inbox topics when its token is bound to one; Forbidden for any other scope (send)."""
    if principal.scope not in READERS:
        raise Forbidden(
            f"subscribing needs a token with scope read or admin; {principal.name!r} has "
            f"{principal.scope}"
        )
    if principal.destination is None:
        return Reader(principal)
    try:
        topics = frozenset(runtime.destinations.get(principal.destination).topics)
    except InvalidInput:  # its destination is no longer configured: it reads nothing
        topics = frozenset()
    return Reader(principal, topics)


async def authenticate_reader(request: HTTPConnection, token: str | None) -> Reader:
    """The caller presenting ``token``, allowed to read (see ``reader_for``)."""
    principal = await get_guard(request).authenticate(client_host(request), token)
    return reader_for(principal, request.app.state.runtime)
