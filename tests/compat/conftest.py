"""An app with named destinations on the log channel, tokens, and a way to wait for deliveries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notifyd import tokens as auth
from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade, write_session
from notifyd.tokens import Scope
from tests.conftest import make_settings
from tests.support import wait_for

FIXTURES = Path(__file__).parent / "fixtures"
DESTINATIONS = {
    "alerts": {"channel": "log", "to": "oncall"},
    "deploys": {"channel": "log", "to": "team"},
}


def fixture(name: str) -> dict[str, Any]:
    """A payload from tests/compat/fixtures."""
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


@dataclass
class Server:
    """A TestClient on an app with destinations, and its settings."""

    client: TestClient
    settings: Settings

    def token(self, name: str, scope: Scope = Scope.send, destination: str | None = None) -> str:
        engine = engine_for(self.settings)
        try:
            with write_session(engine) as session:
                created = auth.create_token(
                    session=session, name=name, scope=scope, destination=destination
                )
        finally:
            engine.dispose()
        return created.token

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token('admin-reader', Scope.admin)}"}

    def delivered(self, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the log channel holds ``count`` lines; return them."""

        def lines() -> list[dict[str, Any]] | None:
            path = self.settings.log_file
            if not path.exists():
                return None
            found = [json.loads(line) for line in path.read_text().splitlines() if line]
            return found if len(found) >= count else None

        return wait_for(lines, timeout=30, interval=0.02, what=f"{count} log deliveries")


Start = Callable[..., Server]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start an app (dispatcher included) with the test destinations and settings overrides."""
    clients: list[TestClient] = []

    def run(**overrides: Any) -> Server:
        overrides.setdefault("destinations", DESTINATIONS)
        overrides.setdefault("token_cache_seconds", 0)  # a token made mid-test counts at once
        settings = make_settings(tmp_path / "home", **overrides)
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = engine_for(settings)
        upgrade(engine)
        engine.dispose()
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return Server(client, settings)

    yield run
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def server(start: Start) -> Server:
    """An open (loopback, no tokens yet) server with the destinations alerts and deploys."""
    return start()
