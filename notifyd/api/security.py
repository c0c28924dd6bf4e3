"""install_security(app, …): tokens and limits, the body limit, CORS, request ids, the documented errors."""

from __future__ import annotations

from fastapi import FastAPI

from notifyd.api.auth import STATE_KEY, Guard
from notifyd.api.bodylimit import BodyLimitMiddleware
from notifyd.api.cors import ProblemCORSMiddleware
from notifyd.api.openapi import install_openapi
from notifyd.api.requestid import HEADER as REQUEST_ID_HEADER
from notifyd.api.requestid import RequestIdMiddleware
from notifyd.api.tokencache import TokenCache
from notifyd.api.tokenprobe import TokenProbe
from notifyd.compat.dialects import too_large
from notifyd.config import Settings
from notifyd.runtime import Runtime


def install_security(app: FastAPI, settings: Settings, runtime: Runtime) -> Guard:
    """Wire authentication, limits and their middleware into ``app``; returns its Guard."""
    tokens = TokenCache(
        runtime.engine,
        ttl=settings.token_cache_seconds,
        submit_write=runtime.tracker.writer.submit,
    )
    # While open for want of a token, each request asks the store whether one appeared.
    guard = Guard(settings, tokens, probe=TokenProbe(runtime.engine))
    setattr(app.state, STATE_KEY, guard)
    # The last added runs first: request id, then CORS, then the body limit (which refuses the
    # ntfy and Gotify paths in their peers' shapes).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, refusal=too_large)
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER],
            expose_headers=["Location", "Retry-After", "Idempotency-Replay", REQUEST_ID_HEADER],
            allow_credentials=False,
        )
    app.add_middleware(RequestIdMiddleware)
    install_openapi(app)
    return guard
