"""Route dependencies: the runtime and a read session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from notifyd.db import read_session
from notifyd.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The process's Runtime, set by create_app."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """A read session on the store."""
    with read_session(get_runtime(request).engine) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
