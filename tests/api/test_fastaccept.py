"""The accept fast path answers exactly as the declared route does, and falls back for the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from starlette.types import Message

from notifyd.api.app import create_app
from notifyd.config import DestinationSettings, Settings
from notifyd.db import engine_for, upgrade, write_session
from notifyd.models import Notification
from notifyd.tokens import Scope
from notifyd.tokens import create_token as create_bound
from tests.api.security_support import bearer, create_token
from tests.conftest import make_settings

NOTE = {"to": ["a@example.com"], "subject": "Hi", "message": "Hello"}
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for (the declared route's way)."""
    seen: list[str] = []
    original = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", spy)
    return seen


def _post(client: TestClient, content_type: str, body: bytes, **headers: str) -> Any:
    return client.post(
        "/v1/notifications", content=body, headers={"content-type": content_type, **headers}
    )


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(NOTIFICATIONS)).scalar_one())


def test_both_paths_answer_the_same_shape_and_store_alike(
    client: TestClient, migrated: Engine, solved: list[str]
) -> None:
    raw = json.dumps(NOTE).encode()
    fast = _post(client, "application/json", raw)
    assert solved == []  # the common request never reached FastAPI's dependency solving
    declared = _post(client, "application/merge+json", raw)  # JSON to FastAPI, not to the fast path
    assert solved == ["/v1/notifications"]
    for response in (fast, declared):
        assert response.status_code == 202, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["location"] == f"/v1/notifications/{response.json()['id']}"
    shape = {k: v for k, v in fast.json().items() if k not in ("id", "tasks")}
    assert shape == {k: v for k, v in declared.json().items() if k not in ("id", "tasks")}
    assert [set(t) for t in fast.json()["tasks"]] == [set(t) for t in declared.json()["tasks"]]
    assert _stored(migrated) == 2


def test_bad_bodies_go_to_the_declared_route_and_are_worded_as_always(
    client: TestClient, solved: list[str]
) -> None:
    response = _post(client, "application/json", b'{"to": "a"}')
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "message" in response.json()["detail"]
    assert solved == ["/v1/notifications"]


def test_the_fast_path_admits_callers_as_the_declared_route_does(
    app: FastAPI, migrated: Engine
) -> None:
    read = create_token(migrated, "reader", Scope.read)
    send = create_token(migrated, "sender", Scope.send)
    raw = json.dumps(NOTE).encode()
    with TestClient(app) as client:
        assert _post(client, "application/json", raw).status_code == 401
        forbidden = _post(client, "application/json", raw, **bearer(read))
        assert forbidden.status_code == 403 and "scope" in forbidden.json()["detail"]
        first = _post(client, "application/json", raw, **bearer(send), **{"Idempotency-Key": "k1"})
        again = _post(client, "application/json", raw, **bearer(send), **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotency-replay"] == "true"
    assert "idempotency-replay" not in first.headers
    assert _stored(migrated) == 1


def test_a_token_bound_to_a_destination_sends_there_only(
    settings: Settings, migrated: Engine
) -> None:
    destinations = {
        "ops": DestinationSettings(channel="log", to=["oncall"]),
        "other": DestinationSettings(channel="log", to=["elsewhere"]),
    }
    with write_session(migrated) as session:
        token = create_bound(
            session=session, name="ops-only", scope=Scope.send, destination="ops"
        ).token
    app = create_app(settings.model_copy(update={"destinations": destinations}))
    with TestClient(app) as client:
        for content_type in ("application/json", "application/merge+json"):  # both paths
            for body in ({"destination": "other", "message": "m"}, {"to": "x", "message": "m"}):
                refused = _post(client, content_type, json.dumps(body).encode(), **bearer(token))
                assert refused.status_code == 403, refused.text
                assert "bound to destination 'ops'" in refused.json()["detail"]
            allowed = _post(
                client,
                content_type,
                json.dumps({"destination": "ops", "message": "m"}).encode(),
                **bearer(token),
            )
            assert allowed.status_code == 202, allowed.text


def test_the_lane_answers_inside_the_request_id_and_with_the_apps_problems(
    app: FastAPI, migrated: Engine, solved: list[str]
) -> None:
    create_token(migrated, "sender", Scope.send)
    raw = json.dumps(NOTE).encode()
    with TestClient(app) as client:
        refused = _post(client, "application/json", raw, **{"X-Request-ID": "trace-1"})
    assert solved == []  # answered by the lane, errors included
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["x-request-id"] == "trace-1"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["instance"] == "/v1/notifications"


def test_accepted_answers_carry_a_request_id(client: TestClient) -> None:
    raw = json.dumps(NOTE).encode()
    offered = _post(client, "application/json", raw, **{"X-Request-ID": "abc.123"})
    assert offered.headers["x-request-id"] == "abc.123"
    made = _post(client, "application/json", raw, **{"X-Request-ID": "bad id\twith tab"})
    assert made.status_code == 202 and len(made.headers["x-request-id"]) == 16


def test_a_failed_token_is_charged_once_to_the_failure_budget(
    tmp_path: Path, solved: list[str]
) -> None:
    settings = make_settings(tmp_path / "home", auth_failure_burst=3)
    engine = engine_for(settings)
    upgrade(engine)
    create_token(engine, "sender", Scope.send)
    raw = json.dumps(NOTE).encode()
    with TestClient(create_app(settings)) as client:
        answers = [
            _post(client, "application/json", raw, **bearer("wrong")).status_code for _ in range(4)
        ]
    engine.dispose()
    assert answers == [401, 401, 401, 429]
    assert solved == []


def test_an_unforeseen_error_is_the_apps_500_with_the_request_id(
    app: FastAPI, migrated: Engine, solved: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.state.runtime.submitter, "submit", broken)
    raw = json.dumps(NOTE).encode()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = _post(client, "application/json", raw, **{"X-Request-ID": "trace-500"})
    assert solved == []
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-500"
    assert "trace-500" in response.json()["detail"] and "fire" not in response.text


def _chunked(raw: bytes) -> Iterator[bytes]:
    yield raw[:10]
    yield raw[10:]


@pytest.mark.parametrize("case", ["chunked", "cors configured", "cors origin", "opentelemetry"])
def test_what_the_apps_own_layers_must_see_goes_to_them(
    tmp_path: Path, solved: list[str], case: str
) -> None:
    settings = make_settings(
        tmp_path / "home",
        cors_origins=["https://app.example"] if case.startswith("cors") else [],
        opentelemetry=case == "opentelemetry",
    )
    upgrade(engine_for(settings))
    raw = json.dumps(NOTE).encode()
    headers = {"content-type": "application/json"}
    if case == "cors origin":
        headers["origin"] = "https://app.example"
    with TestClient(create_app(settings)) as client:
        content = _chunked(raw) if case == "chunked" else raw
        response = client.post("/v1/notifications", content=content, headers=headers)
    assert response.status_code == 202, response.text
    assert solved == ["/v1/notifications"]  # answered by the declared route
    assert "x-request-id" in response.headers
    if case.startswith("cors"):
        assert "origin" in response.headers["vary"].lower()
    if case == "cors origin":
        assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_the_first_of_a_repeated_header_counts_as_in_the_app(
    app: FastAPI, migrated: Engine, solved: list[str]
) -> None:
    send = create_token(migrated, "sender", Scope.send)
    raw = json.dumps(NOTE).encode()
    repeated = [
        ("content-type", "application/json"),
        ("x-request-id", "first"),
        ("x-request-id", "second"),
        ("authorization", f"Bearer {send}"),
        ("authorization", "Bearer wrong"),
    ]
    with TestClient(app) as client:
        response = client.post("/v1/notifications", content=raw, headers=repeated)
    assert solved == []
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == "first"


@pytest.mark.anyio
async def test_more_body_than_declared_is_refused_by_the_lane(app: FastAPI) -> None:
    """A server that handed on more than the declared length could not get past the limit."""
    limit = app.state.runtime.settings.max_body_bytes
    sent: list[Any] = []
    parts = [b"{" + b" " * limit, b"}"]

    async def receive() -> Message:
        return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/v1/notifications", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        "client": ("127.0.0.1", 1), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
