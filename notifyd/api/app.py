"""create_app(settings): the FastAPI application, with its runtime run by the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from notifyd import __version__, compat
from notifyd.api.fastaccept import AcceptLane
from notifyd.api.params import strict_parameters
from notifyd.api.problems import install_problem_handlers
from notifyd.api.routes import destinations, health, metrics, notifications, tasks
from notifyd.api.security import install_security
from notifyd.api.streaming import RAW_SEND
from notifyd.config import Settings
from notifyd.db import check_schema
from notifyd.runtime import Runtime, build_runtime
from notifyd.tracking.tracker import APP_STATE_KEY
from notifyd.ui.app import install_ui
from notifyd.ui.docs import install_swagger


class NotifydApp(FastAPI):
    """The FastAPI app, whose common accept is answered ahead of its layers (api.fastaccept)."""

    lane: AcceptLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if lane is not None and lane.takes(scope):
            scope["app"] = self
            await lane(scope, receive, send)
        else:
            # A subscriber's endless stream writes its body through the server's own send,
            # past the layers that only look at a response's start (api.streaming).
            scope[RAW_SEND] = send
            await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; the store must already be migrated (``notifyd db upgrade``)."""
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema(runtime.engine, allow_behind=False)
        await runtime.start()
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()
            if guard.probe is not None:
                guard.probe.close()

    # /docs and /redoc load their scripts and styles from this server, not from a CDN.
    app = NotifydApp(
        docs_url=None,  # served by install_swagger
        redoc_url=None,  # served by install_ui, without the logo Redoc fetches from a CDN
        title="notifyd",
        version=__version__,
        summary="Accept notifications at once; deliver them durably; see every run.",
        lifespan=lifespan,
        dependencies=[Depends(strict_parameters)],
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    install_swagger(app)
    app.state.runtime = runtime
    setattr(app.state, APP_STATE_KEY, runtime.tracker)
    install_problem_handlers(app)
    guard = install_security(app, settings, runtime)
    # FastAPI's telemetry and the CORS layer see (and answer) the requests their layers see.
    if not settings.opentelemetry and not settings.cors_origins:
        app.lane = AcceptLane(
            partial(FastAPI.__call__, app),
            runtime=runtime,
            max_body_bytes=settings.max_body_bytes,
        )
    app.include_router(notifications.router)
    app.include_router(tasks.router)
    app.include_router(destinations.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_ui(app)
    # Last of all: ntfy's catch-all /{topic} must not shadow any path above.
    for router in compat.routers():
        app.include_router(router)
    return app
