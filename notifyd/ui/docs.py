"""``/redoc`` without a CDN: fastapi-offline serves Swagger UI's and Redoc's files from the
installed package; Redoc's bundle alone still fetches its maker's logo from a CDN, so it is
served here with that one address pointed at a local image."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from starlette.responses import HTMLResponse, Response

OFFLINE_STATIC = Path(fastapi_offline.__file__).parent / "static"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_STATIC = "/static-offline-docs"  # where fastapi-offline mounts its files
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
