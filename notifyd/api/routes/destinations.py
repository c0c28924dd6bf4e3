"""The named destinations clients may send to."""

from __future__ import annotations

from fastapi import APIRouter, Security

from notifyd.api.auth import require_scope
from notifyd.api.deps import RuntimeDep
from notifyd.notifications.destinations import DestinationPublic
from notifyd.tokens import Scope

router = APIRouter(prefix="/v1/destinations", tags=["destinations"])


@router.get("", dependencies=[Security(require_scope(Scope.read, Scope.send))])
def list_destinations(runtime: RuntimeDep) -> list[DestinationPublic]:
    """The configured destinations: names and channels only (recipients and secrets stay private)."""
    return runtime.destinations.public()
