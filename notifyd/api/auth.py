"""Who is calling, and may they: bearer tokens, scopes and rate limits as route dependencies.

Protect a route with a parameter or a route-level dependency::

    @router.post("/{run_id}/retry", dependencies=[AdminAccess])
    def retry(...): ...

    @router.get("/{notification_id}")
    def read(caller: Annotated[Principal, Security(require_scope(Scope.read, Scope.send))]): ...

``admin`` passes every check. A ``send`` token that is let through a read route sees only its own
notifications: pass ``principal.owner`` to the service as the caller filter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from notifyd.api.ratelimit import Clock, RateLimiter
from notifyd.api.tokencache import TokenCache
from notifyd.api.tokenprobe import TokenProbe
from notifyd.config import Settings
from notifyd.errors import Forbidden, RateLimited, Unauthorized
from notifyd.tokens import Scope, open_mode_allowed

log = logging.getLogger(__name__)
STATE_KEY = "notifyd_guard"

bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `notifyd tokens create NAME --scope send|read|admin`.",
)


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a token's name and scope, or the open loopback mode; and the
    destination the token is bound to, if it is (it sends there only)."""

    name: str | None
    scope: Scope
    destination: str | None = None

    @property
    def owner(self) -> str | None:
        """The caller whose notifications alone this principal may read; None for all."""
        return self.name if self.scope == Scope.send else None


OPEN = Principal(name=None, scope=Scope.admin)


class Guard:
    """The authentication state of one app: the token cache and the rate limiters."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenCache,
        *,
        probe: TokenProbe | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.probe = probe
        self.open_allowed = open_mode_allowed(
            host=settings.host, insecure_no_auth=settings.insecure_no_auth
        )
        self.insecure_no_auth = settings.insecure_no_auth
        self.per_token = RateLimiter(
            burst=settings.rate_limit_burst, rate=settings.rate_limit_per_second, clock=clock
        )
        self.failures = RateLimiter(
            burst=settings.auth_failure_burst,
            rate=settings.auth_failure_per_minute / 60,
            clock=clock,
        )

    def is_open(self) -> bool:
        """Whether requests need no token: none is active, the bind allows it, and either no
        token ever existed or the operator opened the API on purpose (``insecure_no_auth``).
        Revoking every token leaves the API closed."""
        if self.tokens.any_active or not self.open_allowed:
            return False
        return self.insecure_no_auth or not self.tokens.any_ever

    async def _still_open(self) -> bool:
        """Whether the store still holds the tokens that left the API open; when another
        process made one since the cache loaded, reload it now, not after its ``ttl``."""
        if self.probe is None or await self.probe.counts() == self.tokens.counts:
            return True
        await asyncio.to_thread(self.tokens.refresh, force=True)
        return self.is_open()

    async def authenticate(self, client: str, token: str | None) -> Principal:
        """The caller presenting ``token`` from address ``client``, or Unauthorized / RateLimited."""
        if self.tokens.stale():
            await self.tokens.refresh_if_stale()
        else:
            self.tokens.reload_ahead()
        if self.is_open() and await self._still_open():
            return OPEN
        if not token:
            raise Unauthorized("this API needs a token: send `Authorization: Bearer <token>`")
        # Take from the client's failure budget before looking, so that a guess made while the
        # budget is empty is refused unseen; a good token gives it back.
        wait = self.failures.acquire(client)
        if wait is not None:
            raise RateLimited(
                "too many failed authentications from this address; try again later",
                retry_after=wait,
            )
        info = self.tokens.lookup(token)
        if info is None:
            log.warning("rejected an invalid API token from %s", client)
            raise Unauthorized("the token is invalid or revoked", invalid_token=True)
        self.failures.refund(client)
        wait = self.per_token.acquire(info.name)
        if wait is not None:
            raise RateLimited(
                f"rate limit of token {info.name!r} exceeded; slow down", retry_after=wait
            )
        self.tokens.touch(info)
        return Principal(name=info.name, scope=info.scope, destination=info.destination)

    async def admit(self, client: str, token: str | None, allowed: frozenset[Scope]) -> Principal:
        """The caller if its scope is one of ``allowed`` (``admin`` always is), else Forbidden."""
        principal = await self.authenticate(client, token)
        if principal.scope not in allowed and principal.scope != Scope.admin:
            wanted = " or ".join(sorted({*allowed, Scope.admin}))
            raise Forbidden(
                f"this needs a token with scope {wanted}; {principal.name!r} has {principal.scope}"
            )
        return principal


def client_host(request: HTTPConnection) -> str:
    """The address the request came from, as the failure rate limit counts it."""
    return request.client.host if request.client else "unknown"


def token_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` value, as FastAPI's HTTPBearer reads it."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def get_guard(request: HTTPConnection) -> Guard:
    """The app's Guard, set by ``install_security``."""
    guard: Guard = getattr(request.app.state, STATE_KEY)
    return guard


def require_scope(*scopes: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting tokens with one of ``scopes`` (and ``admin`` tokens)."""
    allowed = frozenset({*scopes, Scope.admin})

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        token = credentials.credentials if credentials else None
        return await get_guard(request).admit(client_host(request), token, allowed)

    dependency.__name__ = f"require_{'_or_'.join(sorted(allowed))}"
    return dependency


SendCaller = Annotated[Principal, Security(require_scope(Scope.send))]
ReadCaller = Annotated[Principal, Security(require_scope(Scope.read))]
ReadOwnCaller = Annotated[Principal, Security(require_scope(Scope.read, Scope.send))]
AdminCaller = Annotated[Principal, Security(require_scope(Scope.admin))]
AdminAccess: Any = Security(require_scope(Scope.admin))
ReadAccess: Any = Security(require_scope(Scope.read))
