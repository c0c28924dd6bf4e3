"""Route dependencies: the runtime and a read connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from notifyd.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The process's Runtime, set by create_app (``async``: no thread hop on the hot path)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_connection(request: Request) -> Iterator[Connection]:
    """A connection for reading the store."""
    runtime: Runtime = request.app.state.runtime
    with runtime.engine.connect() as conn:
        yield conn


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ConnDep = Annotated[Connection, Depends(get_connection)]
