"""Other tools' languages mapped onto notifyd's submit: ntfy's publish API, Gotify's
``POST /message``, Alertmanager's and Grafana's webhooks.

Each request becomes an ordinary notification to a named destination, stored before the answer
(the same durable commit as ``POST /v1/notifications``) and answered in the peer's own dialect,
because those clients read it. ``routers()`` lists them in the order ``create_app`` must include
them: last of all, since ntfy's ``/{topic}`` would otherwise shadow notifyd's own paths.
"""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """The compatibility routers, in inclusion order (Gotify's /message before ntfy's /{topic})."""
    from notifyd.compat.alerts import router as alerts
    from notifyd.compat.gotify import router as gotify
    from notifyd.compat.gotify_client import router as gotify_client
    from notifyd.compat.ntfy import router as ntfy
    from notifyd.compat.ntfy_subscribe import router as ntfy_subscribe

    # Subscribing (two-segment paths) before ntfy's /{topic}/<verb> and /{topic} routes.
    return [alerts, gotify_client, gotify, ntfy_subscribe, ntfy]
