"""Idempotency-Key: replay, conflict, in-progress, limits."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, FromClause, func, select, update

from notifyd.models import IdempotencyRecord, Notification
from notifyd.timeutil import utcnow
from notifyd.tracking.admin import RUNS

BODY = {"to": ["a", "b"], "subject": "s", "message": "m"}


def _count(engine: Engine, model: type[Notification] | FromClause) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_same_key_same_body_replays_and_creates_nothing(
    client: TestClient, migrated: Engine
) -> None:
    first = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202 and "idempotency-replay" not in first.headers
    second = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "k1"})
    assert second.status_code == 202
    assert second.headers["idempotency-replay"] == "true"
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert _count(migrated, Notification) == 1 and _count(migrated, RUNS) == 2
    other = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "k2"})
    assert other.json()["id"] != first.json()["id"]


def test_same_key_different_body_is_422(client: TestClient) -> None:
    client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "k"})
    response = client.post(
        "/v1/notifications", json={**BODY, "message": "changed"}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 422
    assert "different request body" in response.json()["detail"]


def test_same_key_while_the_first_is_processing_is_409_with_retry_after(
    app: FastAPI, client: TestClient
) -> None:
    with app.state.runtime.submitter.keys.claim("anonymous", "busy"):
        response = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "busy"}).status_code
        == 202
    )


def test_keys_longer_than_255_are_refused(client: TestClient) -> None:
    response = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    ok = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "x" * 255})
    assert ok.status_code == 202


def test_an_expired_key_can_be_used_again(client: TestClient, migrated: Engine) -> None:
    first = client.post("/v1/notifications", json=BODY, headers={"Idempotency-Key": "old"})
    with migrated.begin() as conn:
        conn.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    again = client.post(
        "/v1/notifications", json={**BODY, "message": "new"}, headers={"Idempotency-Key": "old"}
    )
    assert again.status_code == 202 and "idempotency-replay" not in again.headers
    assert again.json()["id"] != first.json()["id"]
