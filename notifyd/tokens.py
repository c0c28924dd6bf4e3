"""API tokens: made with high entropy, shown once, stored only as a hash; and who may serve without them.

A token is ``ntd_`` followed by 256 random bits. Only its SHA-256 is stored: a fast hash is right
for a secret that cannot be guessed (a slow one only protects low-entropy passwords).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func
from sqlmodel import Session, col, select

from notifyd.db import read_session
from notifyd.errors import ConfigError, InvalidInput, NotFound
from notifyd.models import ApiToken
from notifyd.timeutil import utcnow

TOKEN_PREFIX = "ntd_"
TOKEN_BYTES = 32
# Anything longer is not one of ours; refuse it before hashing.
MAX_TOKEN_CHARS = 128
HASH_PREFIX = "sha256:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_DESTINATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class Scope(StrEnum):
    """What a token may do: ``send`` posts (and reads its own), ``read`` reads all, ``admin`` all."""

    send = "send"
    read = "read"
    admin = "admin"


class TokenPublic(BaseModel):
    """A token as listed: never the token itself."""

    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    destination: str | None = None


class CreatedToken(TokenPublic):
    """A new token with its secret, which is shown this once."""

    token: str


def generate_token() -> str:
    """A new random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """What the store keeps of a token."""
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def hashes_match(stored: str, candidate: str) -> bool:
    """Compare two token hashes in constant time."""
    return hmac.compare_digest(stored.encode(), candidate.encode())


def plausible_token(token: str) -> bool:
    """Whether ``token`` has the shape of a notifyd token (cheap check before hashing)."""
    return token.startswith(TOKEN_PREFIX) and len(token) <= MAX_TOKEN_CHARS


def _public(row: ApiToken) -> TokenPublic:
    return TokenPublic(
        name=row.name,
        scope=Scope(row.scope),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        destination=row.destination,
    )


def create_token(
    *, session: Session, name: str, scope: Scope, destination: str | None = None
) -> CreatedToken:
    """Create a token; its secret is in the result and nowhere else.

    ``destination`` binds it to a named destination, for clients that name none (Gotify's).
    """
    if destination is not None and not _DESTINATION.fullmatch(destination):
        raise InvalidInput("destination: a destination name is letters, digits, '.', '_' or '-'")
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "name: 1-100 characters: letters, digits, '.', '_', '@' or '-', starting with a letter"
            " or digit"
        )
    existing = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if existing is not None:
        state = " (revoked; names are not reused)" if existing.revoked_at else ""
        raise InvalidInput(f"name: a token named {name!r} already exists{state}")
    token = generate_token()
    row = ApiToken(
        name=name,
        token_hash=hash_token(token),
        scope=scope.value,
        created_at=utcnow(),
        destination=destination,
    )
    session.add(row)
    session.flush()
    return CreatedToken(**_public(row).model_dump(), token=token)


def list_tokens(*, session: Session, include_revoked: bool = False) -> list[TokenPublic]:
    """Tokens by name; revoked ones only when asked."""
    query = select(ApiToken).order_by(col(ApiToken.name))
    if not include_revoked:
        query = query.where(col(ApiToken.revoked_at).is_(None))
    return [_public(row) for row in session.exec(query).all()]


def revoke_token(*, session: Session, name: str) -> TokenPublic:
    """Revoke a token by name (revoking twice is harmless)."""
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise NotFound(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    return _public(row)


def count_active_tokens(conn: Connection | Session) -> int:
    """How many tokens are not revoked."""
    query = select(func.count()).select_from(ApiToken).where(col(ApiToken.revoked_at).is_(None))
    if isinstance(conn, Session):
        return int(conn.exec(query).one())
    return int(conn.execute(query).scalar_one())


def count_all_tokens(conn: Connection | Session) -> int:
    """How many tokens ever existed (revoked ones are kept: names are never reused)."""
    query = select(func.count()).select_from(ApiToken)
    if isinstance(conn, Session):
        return int(conn.exec(query).one())
    return int(conn.execute(query).scalar_one())


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def open_mode_allowed(*, host: str, insecure_no_auth: bool) -> bool:
    """Whether the API may be open while no token exists: on a loopback bind, or when told so."""
    return insecure_no_auth or is_loopback(host)


def refusal_to_serve(*, host: str, insecure_no_auth: bool, active_tokens: int) -> str | None:
    """Why ``notifyd serve`` must not start on ``host``, or None when it may."""
    if active_tokens or open_mode_allowed(host=host, insecure_no_auth=insecure_no_auth):
        return None
    return (
        f"refusing to serve on {host} without API tokens: anyone who can reach it could use it. "
        "Create a token first (`notifyd tokens create NAME --scope send`) or, to serve an open "
        "API on purpose, pass --insecure-no-auth"
    )


def check_bind(*, host: str, insecure_no_auth: bool, engine: Engine) -> str:
    """Refuse (ConfigError) an open API on a non-loopback address; describe the auth mode."""
    with read_session(engine) as session:
        active = count_active_tokens(session)
        ever = count_all_tokens(session)
    refusal = refusal_to_serve(host=host, insecure_no_auth=insecure_no_auth, active_tokens=active)
    if refusal is not None:
        raise ConfigError(refusal)
    if active:
        return f"API tokens required ({active} active)"
    if ever and not insecure_no_auth:
        return (
            "API closed: every token is revoked (create one, or pass --insecure-no-auth to open"
            " the API on purpose)"
        )
    if is_loopback(host):
        return "API open to this machine: no tokens exist yet (loopback bind)"
    return "API OPEN TO THE NETWORK: --insecure-no-auth and no tokens"
