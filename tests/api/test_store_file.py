"""The SQLite file deleted while serving: 503 for writes, /healthz failing, one ERROR line
(issue 13, item 9: /healthz stayed 200 and later POSTs got 202, then vanished)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from notifyd.config import Settings

NOTE = {"to": "ops", "message": "m"}


def _delete_store(settings: Settings) -> None:
    db = settings.home / "notifyd.db"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("replace", [False, True])
def test_a_deleted_store_stops_accepting(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture, replace: bool
) -> None:
    assert client.post("/v1/notifications", json=NOTE).status_code == 202
    assert client.get("/healthz").status_code == 200
    _delete_store(settings)
    if replace:  # another file now at the path is not the one being written either
        (settings.home / "notifyd.db").write_bytes(b"")
    with caplog.at_level(logging.ERROR, logger="notifyd.db"):
        for path, body in [("/v1/notifications", NOTE), ("/v1/notifications", NOTE)]:
            response = client.post(path, json=body)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "Retry-After" in response.headers
            assert "deleted or replaced" in response.json()["detail"]
        assert client.get("/healthz").status_code == 503
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "notifyd.db"]
    assert len(errors) == 1 and "deleted or replaced" in errors[0].getMessage()


def test_a_replay_from_a_deleted_store_is_refused_too(
    client: TestClient, settings: Settings
) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/notifications", json=NOTE, headers=key)
    assert first.status_code == 202
    _delete_store(settings)
    # Nothing would be committed, but the answer would come from the lost file.
    replay = client.post("/v1/notifications", json=NOTE, headers=key)
    assert replay.status_code == 503, replay.text
    assert "deleted or replaced" in replay.json()["detail"]
