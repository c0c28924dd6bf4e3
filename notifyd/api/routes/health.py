"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from notifyd import __version__
from notifyd.api.deps import RuntimeDep
from notifyd.api.problems import problem_responses
from notifyd.errors import StoreUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The server is up and its store answers."""

    status: str
    version: str
    database: str
    in_flight: int


@router.get("/healthz", responses=problem_responses(503))
async def healthz(runtime: RuntimeDep) -> Health:
    """Report whether the server and its database are working."""
    if runtime.store_file is not None:
        runtime.store_file.check()  # the SQLite file deleted or replaced: 503

    def ping() -> None:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(ping)
    except Exception as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from None
    return Health(
        status="ok",
        version=__version__,
        database=runtime.engine.dialect.name,
        in_flight=runtime.tracker.dispatcher.in_flight,
    )
