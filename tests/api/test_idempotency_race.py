"""Two servers on one store race on one Idempotency-Key: the loser replays the winner's answer
(issue 13, item 7: it answered 500, committing its discarded batch a second time)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from notifyd.api.app import create_app
from notifyd.db import engine_for, upgrade
from notifyd.models import Notification
from notifyd.notifications.idempotency import Replay
from notifyd.runtime import build_runtime
from notifyd.tracking.admin import RUNS
from tests.conftest import make_settings

BODY = {"to": ["a", "b"], "subject": "s", "message": "m"}
KEY = {"Idempotency-Key": "raced"}


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
def two_servers(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, TestClient, Engine]]:
    """Two apps, each with its own engine and runtime (as two processes), on one store."""
    settings = make_settings(tmp_path / "home", db_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        engines = [engine_for(settings) for _ in range(2)]
        upgrade(engines[0])
        clients = []
        for engine in engines:
            stack.callback(engine.dispose)
            runtime = build_runtime(settings, engine=engine, run_dispatcher=False)
            app = create_app(settings, runtime=runtime)
            clients.append(stack.enter_context(TestClient(app, raise_server_exceptions=False)))
        yield clients[0], clients[1], engines[0]


# The fast accept path, and FastAPI's declared route (taken for other JSON content types).
@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.notifyd+json"])
def test_the_loser_of_a_cross_process_race_replays_the_winner(
    two_servers: tuple[TestClient, TestClient, Engine], content_type: str
) -> None:
    first, second, engine = two_servers
    keys = first.app.state.runtime.submitter.keys  # type: ignore[attr-defined]
    original = keys.lookup
    winner: list[dict[str, object]] = []

    def lookup(caller: str, key: str, fingerprint: str, now: datetime) -> Replay | None:
        # The other server stores the key between this server's look-up and its commit.
        if not winner:
            response = second.post("/v1/notifications", json=BODY, headers=KEY)
            assert response.status_code == 202, response.text
            winner.append(response.json())
            return None
        found: Replay | None = original(caller, key, fingerprint, now)
        return found

    keys.lookup = lookup
    response = first.post(
        "/v1/notifications",
        content=json.dumps(BODY),
        headers={**KEY, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert response.headers["idempotency-replay"] == "true"
    assert response.json() == winner[0]
    assert _count(engine, Notification) == 1 and _count(engine, RUNS) == 2
