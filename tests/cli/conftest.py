"""CLI fixtures: a runner whose environment points at a temporary store, and a live server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from typer.testing import CliRunner

from notifyd.api.app import create_app
from notifyd.client import NotifydClient
from notifyd.config import Settings
from tests.support import free_port, wait_for


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CliRunner; NOTIFYD_HOME is the test's data dir."""
    monkeypatch.setenv("NOTIFYD_HOME", str(settings.home))
    return CliRunner()


@pytest.fixture
def live_server(
    settings: Settings, migrated: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn to start")
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("NOTIFYD_SERVER_URL", url)
    yield url
    server.should_exit = True
    thread.join(timeout=15)


@contextlib.contextmanager
def fake_server(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]
) -> Iterator[None]:
    """Every NotifydClient the CLI builds talks to ``handler`` instead of a server."""
    original = NotifydClient.__init__

    def init(self: NotifydClient, base_url: str, **kwargs: Any) -> None:
        original(self, base_url, **{**kwargs, "transport": httpx.MockTransport(handler)})

    monkeypatch.setattr(NotifydClient, "__init__", init)
    yield
