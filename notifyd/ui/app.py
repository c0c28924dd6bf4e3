"""install_ui(app): the dashboard's routes, its static files and its security headers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd.ui import actions, inbox, pages
from notifyd.ui.docs import install_redoc
from notifyd.ui.render import STATIC
from notifyd.ui.session import STATE_KEY, Sessions

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# /docs and /redoc (served offline by fastapi-offline) start with inline scripts; nothing may
# leave for another host either (Redoc would fetch its maker's logo from a CDN).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")


class DashboardHeaders:
    """Every answer under ``/ui`` (pages, errors, assets) carries the CSP and its companions,
    and so do the API docs' pages; pages are never cached (they would show data after logout)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/ui" or path.startswith("/ui/"):
            policy = CSP
        elif path in DOCS_PATHS:
            policy = DOCS_CSP
        else:
            await self.app(scope, receive, send)
            return
        no_store = not path.startswith("/ui/static/")
        headers = [(b"content-security-policy", policy.encode()), *HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in headers if h[0] not in names]
                if no_store and b"cache-control" not in names:
                    extra.append(NO_STORE)
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_ui(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui/`` (and lead ``/`` there); ``/redoc`` offline."""
    setattr(app.state, STATE_KEY, Sessions())
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(inbox.router)
    if app.redoc_url is None:
        install_redoc(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """The dashboard."""
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    app.add_middleware(DashboardHeaders)
