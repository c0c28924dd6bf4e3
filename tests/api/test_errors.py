"""Every error is problem+json; a crash is a 500 with a request id and no internals; CORS is opt-in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from notifyd.api.app import create_app
from notifyd.db import engine_for, upgrade
from tests.conftest import make_settings

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/v1/notifications/ntf_missing", 404),
        ("GET", "/v1/tasks/run_missing", 404),
        ("DELETE", "/v1/notifications", 405),
        ("PUT", "/v1/tasks", 405),
        ("GET", "/v1/tasks?limit=0", 422),
        ("GET", "/v1/tasks?since=yesterday", 422),
        ("GET", "/v1/tasks?since=0.5", 422),  # not read as a Unix time
        ("GET", "/v1/tasks?since=2026-01-31T09:00:00", 422),  # no offset: ambiguous
        ("GET", "/v1/tasks?staus=failed", 422),  # a typo must not widen the query
        ("GET", "/v1/tasks?cursor=a&cursor=b", 422),
        ("GET", "/v1/tasks/stats?x=1", 422),
    ],
)
def test_errors_are_problems(client: TestClient, method: str, path: str, status: int) -> None:
    assert_problem(client.request(method, path), status)


def test_405_names_the_allowed_methods(client: TestClient) -> None:
    response = client.delete("/v1/notifications")
    assert "POST" in response.headers["allow"]


@pytest.fixture
def crashing_app(app: FastAPI) -> FastAPI:
    def explode() -> None:
        raise RuntimeError("internal detail: password=hunter2 at /srv/secret/path.py")

    app.add_api_route("/v1/explode", explode, methods=["GET"])
    return app


def test_unexpected_error_is_500_without_internals(
    crashing_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(crashing_app, raise_server_exceptions=False) as client:
        response = client.get("/v1/explode", headers={"X-Request-ID": "req-42"})
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text and "secret" not in response.text
    assert "RuntimeError" not in response.text and "Traceback" not in response.text
    assert "req-42" in str(body["detail"])
    assert response.headers["x-request-id"] == "req-42"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("req-42" in r.getMessage() and r.exc_info for r in logged)


def test_request_ids(client: TestClient) -> None:
    mine = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 16
    hostile = client.get("/healthz", headers={"X-Request-ID": "a b%0a" + "x" * 100})
    assert hostile.headers["x-request-id"] != "a b%0a" + "x" * 100


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://evil.example"}
    assert "access-control-allow-origin" not in client.get("/v1/tasks", headers=origin).headers
    preflight = client.options(
        "/v1/notifications",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


def test_cors_when_configured(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", cors_origins=["https://app.example"])
    upgrade(engine_for(settings))
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/v1/notifications",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/v1/tasks", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        refused = client.options(
            "/v1/notifications",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert_problem(refused, 400)


def test_unknown_query_parameters_are_named(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/tasks?limit=5&staus=failed"), 422)
    assert body["errors"] == [{"field": "staus", "message": "unknown query parameter"}]
    assert client.get("/v1/tasks?since=2026-01-31T09:00:00Z&limit=5").status_code == 200


def test_a_validators_message_has_no_pydantic_prefix(client: TestClient) -> None:
    body = assert_problem(
        client.post(
            "/v1/notifications",
            json={"to": "x", "message": "m", "delay": "2h", "send_at": "2030-01-01T00:00:00Z"},
        ),
        422,
    )
    assert "Value error" not in body["detail"], body
    assert body["errors"] == [{"field": "body", "message": "give send_at or delay, not both"}]
