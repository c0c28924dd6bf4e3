"""Route dependencies: the runtime and a read session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from notifyd.db import read_session
from notifyd.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The process's Runtime, set by create_app (``async``: no thread hop on the hot path)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """A read session on the store."""
    runtime: Runtime = request.app.state.runtime
    with read_session(runtime.engine) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
