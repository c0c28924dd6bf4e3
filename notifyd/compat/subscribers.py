"""Where a subscriber's token is, in any of the dialects its client may speak.

``Authorization`` (Bearer, or Basic with the token as the password), ntfy's ``?auth=``, Gotify's
``X-Gotify-Key`` header or ``?token=``: browsers' EventSource and WebSocket cannot set headers,
so the query forms matter more for subscribers than for publishers.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from notifyd.compat.auth import token_from_auth_param, token_from_authorization


def reader_token(connection: HTTPConnection) -> str | None:
    """The token a subscribe request presents, or None."""
    header = connection.headers.get("authorization")
    if header:
        return token_from_authorization(header)
    gotify = connection.headers.get("x-gotify-key")
    if gotify:
        return gotify.strip() or None
    query = connection.query_params
    auth = query.get("auth")
    if auth:
        return token_from_auth_param(auth)
    return query.get("token") or None
