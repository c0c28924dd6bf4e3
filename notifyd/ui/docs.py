"""``/docs`` and ``/redoc`` without a CDN: Swagger UI's and Redoc's files are served from the
installed fastapi-offline package (as its ``FastAPIOffline`` serves them, for an app of ours);
Redoc's bundle alone still fetches its maker's logo from a CDN, so it is served here with that
one address pointed at a local image."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

OFFLINE_STATIC = Path(fastapi_offline.__file__).parent / "static"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_STATIC = "/static-offline-docs"  # where fastapi-offline's files are served
REDOC_JS = "/docs-assets/redoc.standalone.js"


@cache
def _redoc_bundle() -> bytes:
    text = (OFFLINE_STATIC / "redoc.standalone.js").read_text(encoding="utf-8")
    return text.replace(REDOC_LOGO, f"{LOCAL_STATIC}/favicon.png").encode()


def install_redoc(app: FastAPI) -> None:
    """Serve ``/redoc`` (the app is made with ``redoc_url=None``) from local files only."""

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            _redoc_bundle(),
            media_type="text/javascript",
            headers={"cache-control": "public, max-age=86400"},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{LOCAL_STATIC}/favicon.png",
            with_google_fonts=False,
        )


def install_swagger(app: FastAPI) -> None:
    """Serve ``/docs`` (the app is made with ``docs_url=None``) and its files from local files."""
    app.mount(LOCAL_STATIC, StaticFiles(directory=OFFLINE_STATIC), name="static-offline-docs")
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url or '/openapi.json'}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{root}{LOCAL_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{LOCAL_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{LOCAL_STATIC}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
