"""Helpers for the security tests: tokens in a store, a fake clock, every /v1 route with sample paths."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from notifyd import tokens as auth
from notifyd.db import write_session
from notifyd.tokens import Scope


def create_token(engine: Engine, name: str, scope: Scope) -> str:
    """Create a token in the store and return its secret."""
    with write_session(engine) as session:
        return auth.create_token(session=session, name=name, scope=scope).token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every protected operation (/v1 and /metrics), per the schema."""
    return sorted(
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1") or path == "/metrics"
        for method in item
    )


def sample_path(template: str) -> str:
    """A concrete path for a route template: every parameter becomes ``missing``."""
    parts = ["missing" if p.startswith("{") and p.endswith("}") else p for p in template.split("/")]
    return "/".join(parts)
