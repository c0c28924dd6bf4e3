"""Which peer's language a request speaks, from its method and path alone, for the layers that
answer before any route runs (the body limit): ntfy's publish paths, Gotify's ``/message``."""

from __future__ import annotations

from typing import Literal

from starlette.responses import Response
from starlette.types import Scope

from notifyd.compat.gotify import body_too_large as gotify_too_large
from notifyd.compat.ntfy_params import VERBS
from notifyd.compat.ntfy_params import body_too_large as ntfy_too_large
from notifyd.config import RESERVED_DESTINATION_NAMES

Peer = Literal["ntfy", "ntfy-json", "gotify"]


def peer_of(method: str, path: str) -> Peer | None:
    """The peer whose route serves ``method path`` (as compat's routers match it), or None
    for notifyd's own."""
    if method == "POST" and path == "/message":
        return "gotify"  # Gotify's router is included before ntfy's /{topic}
    if path == "/":
        return "ntfy-json" if method in ("PUT", "POST") else None
    segments = path[1:].split("/")
    if not all(segments) or segments[0].lower() in RESERVED_DESTINATION_NAMES:
        return None
    if len(segments) == 1 and method in ("PUT", "POST"):
        return "ntfy"
    if len(segments) == 2 and segments[1] in VERBS and method == "GET":
        return "ntfy"
    return None


def too_large(scope: Scope, limit: int) -> Response | None:
    """A body over ``limit`` refused in the request's peer's shape; None for notifyd's own."""
    peer = peer_of(scope.get("method", ""), scope.get("path", ""))
    if peer == "gotify":
        return gotify_too_large(limit).response()
    if peer is not None:
        return ntfy_too_large(limit, json_body=peer == "ntfy-json").response()
    return None
