"""Tokens and scopes on every API route: 401 without a good token, 403 with the wrong scope."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade, write_session
from notifyd.tokens import Scope
from tests.api.security_support import api_routes, bearer, create_token, sample_path
from tests.conftest import make_settings
from tests.support import NOTIFYD, wait_for

SEND, READ, ADMIN = Scope.send, Scope.read, Scope.admin
# The scopes each API route admits. A new route must be added here: test_every_route_is_listed.
ROUTE_SCOPES: dict[tuple[str, str], set[Scope]] = {
    ("GET", "/v1/destinations"): {SEND, READ, ADMIN},
    ("POST", "/v1/notifications"): {SEND, ADMIN},
    ("GET", "/v1/notifications/{notification_id}"): {SEND, READ, ADMIN},
    ("GET", "/v1/tasks"): {READ, ADMIN},
    ("GET", "/v1/tasks/stats"): {READ, ADMIN},
    ("GET", "/v1/tasks/{run_id}"): {SEND, READ, ADMIN},
    ("POST", "/v1/tasks/{run_id}/retry"): {ADMIN},
    ("POST", "/v1/tasks/{run_id}/cancel"): {ADMIN},
    ("GET", "/metrics"): {READ, ADMIN},
}
NOTE = {"to": "ops", "message": "disk almost full"}


def secured_settings(home: Path, **overrides: Any) -> Settings:
    """Settings whose token cache is never stale, so each test sees its tokens at once."""
    return make_settings(home, token_cache_seconds=0, **overrides)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = secured_settings(tmp_path / "home")
    engine = engine_for(settings)
    upgrade(engine)
    yield settings, engine
    engine.dispose()


@pytest.fixture
def tokens(store: tuple[Settings, Engine]) -> dict[Scope, str]:
    _, engine = store
    return {scope: create_token(engine, f"t-{scope}", scope) for scope in Scope}


@pytest.fixture
def secured(store: tuple[Settings, Engine], tokens: dict[Scope, str]) -> Iterator[TestClient]:
    settings, _ = store
    with TestClient(create_app(settings)) as client:
        yield client


def call(client: TestClient, method: str, template: str, token: str | None) -> Any:
    headers = bearer(token) if token else {}
    body = NOTE if method == "POST" and template == "/v1/notifications" else None
    return client.request(method, sample_path(template), json=body, headers=headers)


def test_every_route_is_listed(secured: TestClient) -> None:
    app: FastAPI = secured.app  # type: ignore[assignment]
    assert set(api_routes(app)) == set(ROUTE_SCOPES)


@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_SCOPES))
def test_missing_token_is_401(secured: TestClient, method: str, template: str) -> None:
    response = call(secured, method, template, None)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "token",
    ["ntd_" + "A" * 43, "not-a-token", "ntd_" + "x" * 500],
    ids=["unknown", "shape", "long"],
)
@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_SCOPES))
def test_bad_token_is_401(secured: TestClient, method: str, template: str, token: str) -> None:
    response = call(secured, method, template, token)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert token not in response.text


def test_other_schemes_are_not_tokens(secured: TestClient, tokens: dict[Scope, str]) -> None:
    response = secured.get("/v1/tasks", headers={"Authorization": f"Basic {tokens[ADMIN]}"})
    assert response.status_code == 401


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_SCOPES))
def test_scopes(
    secured: TestClient, tokens: dict[Scope, str], method: str, template: str, scope: Scope
) -> None:
    response = call(secured, method, template, tokens[scope])
    if scope in ROUTE_SCOPES[(method, template)]:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert f"t-{scope}" in response.json()["detail"]


def test_send_token_reads_only_its_own(
    store: tuple[Settings, Engine], secured: TestClient, tokens: dict[Scope, str]
) -> None:
    _, engine = store
    other = create_token(engine, "other-sender", SEND)
    mine = secured.post("/v1/notifications", json=NOTE, headers=bearer(tokens[SEND])).json()
    theirs = secured.post("/v1/notifications", json=NOTE, headers=bearer(other)).json()
    for token, own, foreign in ((tokens[SEND], mine, theirs), (other, theirs, mine)):
        assert (
            secured.get(f"/v1/notifications/{own['id']}", headers=bearer(token)).status_code == 200
        )
        run = own["tasks"][0]["id"]
        assert secured.get(f"/v1/tasks/{run}", headers=bearer(token)).status_code == 200
        response = secured.get(f"/v1/notifications/{foreign['id']}", headers=bearer(token))
        assert response.status_code == 404
        run = foreign["tasks"][0]["id"]
        assert secured.get(f"/v1/tasks/{run}", headers=bearer(token)).status_code == 404
    for scope in (READ, ADMIN):
        response = secured.get(f"/v1/notifications/{mine['id']}", headers=bearer(tokens[scope]))
        assert response.status_code == 200


def test_revoked_token_is_refused(
    store: tuple[Settings, Engine], secured: TestClient, tokens: dict[Scope, str]
) -> None:
    _, engine = store
    assert secured.get("/v1/tasks", headers=bearer(tokens[READ])).status_code == 200
    with write_session(engine) as session:
        session.connection().execute(
            text("UPDATE api_token SET revoked_at = CURRENT_TIMESTAMP WHERE name = 't-read'")
        )
    assert secured.get("/v1/tasks", headers=bearer(tokens[READ])).status_code == 401


def test_last_use_is_recorded(
    store: tuple[Settings, Engine], secured: TestClient, tokens: dict[Scope, str]
) -> None:
    _, engine = store

    def last_used() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT last_used_at FROM api_token WHERE name = 't-admin'")
            ).scalar_one()

    assert last_used() is None
    assert secured.get("/v1/tasks", headers=bearer(tokens[ADMIN])).status_code == 200
    wait_for(last_used, timeout=10, what="last_used_at")


def test_open_on_loopback_without_tokens(client: TestClient) -> None:
    response = client.post("/v1/notifications", json=NOTE)
    assert response.status_code == 202, response.text
    assert client.get("/v1/tasks").status_code == 200
    assert client.post(f"/v1/tasks/{response.json()['tasks'][0]['id']}/cancel").status_code in (
        200,
        409,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org"])
def test_closed_off_loopback_without_tokens(tmp_path: Path, host: str) -> None:
    settings = secured_settings(tmp_path / "home", host=host)
    upgrade(engine_for(settings))
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/notifications", json=NOTE).status_code == 401
        assert client.get("/healthz").status_code == 200


def test_insecure_no_auth_opens_off_loopback(tmp_path: Path) -> None:
    settings = secured_settings(tmp_path / "home", host="0.0.0.0", insecure_no_auth=True)
    upgrade(engine_for(settings))
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/notifications", json=NOTE).status_code == 202


def test_health_and_schema_stay_open(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


def test_revoking_every_token_keeps_the_api_closed(
    store: tuple[Settings, Engine], secured: TestClient, tokens: dict[Scope, str]
) -> None:
    """Once a token has existed, revoking them all does not open the API (issue 13, item 5)."""
    _, engine = store
    assert secured.get("/v1/tasks").status_code == 401
    with write_session(engine) as session:
        session.connection().execute(text("UPDATE api_token SET revoked_at = CURRENT_TIMESTAMP"))
    assert secured.get("/v1/tasks").status_code == 401
    assert secured.post("/v1/notifications", json=NOTE).status_code == 401
    assert secured.get("/v1/tasks", headers=bearer(tokens[ADMIN])).status_code == 401


def test_insecure_no_auth_reopens_after_revocation(tmp_path: Path) -> None:
    """Opening the API again is the operator's explicit act: ``--insecure-no-auth``."""
    settings = secured_settings(tmp_path / "home", insecure_no_auth=True)
    engine = engine_for(settings)
    upgrade(engine)
    create_token(engine, "gone", ADMIN)
    with write_session(engine) as session:
        session.connection().execute(text("UPDATE api_token SET revoked_at = CURRENT_TIMESTAMP"))
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/notifications", json=NOTE).status_code == 202
    engine.dispose()


@pytest.mark.parametrize("insecure_no_auth", [False, True], ids=["loopback", "insecure-no-auth"])
def test_first_token_closes_the_open_api_at_once(
    tmp_path: Path, db_url: str, insecure_no_auth: bool
) -> None:
    """The first token, made by another process, closes the open API on the next request, not
    after the token cache's lifetime (issue 18, Low 7)."""
    home = tmp_path / "home"
    settings = make_settings(
        home, db_url, token_cache_seconds=3600, insecure_no_auth=insecure_no_auth
    )
    engine = engine_for(settings)
    upgrade(engine)
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/notifications", json=NOTE).status_code == 202
        assert client.get("/v1/tasks").status_code == 200
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
        env["NOTIFYD_HOME"] = str(home)
        if settings.database_url:
            env["NOTIFYD_DATABASE_URL"] = settings.database_url
        made = subprocess.run(
            [NOTIFYD, "tokens", "create", "first", "--scope", "admin"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert client.get("/v1/tasks").status_code == 401
        # The accept lane asks the same Guard.
        assert client.post("/v1/notifications", json=NOTE).status_code == 401
        assert client.get("/v1/tasks", headers=bearer(token)).status_code == 200
