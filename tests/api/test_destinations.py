"""GET /v1/destinations: names and channels only."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from tests.conftest import make_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "home",
        destinations={
            "ops": {
                "channel": "email",
                "to": ["oncall@example.org"],
                "smtp": {"username": "alerts", "password": "smtp-pa55"},
            },
            "deploys": {
                "channel": "webhook",
                "to": "https://hooks.example.org/T0/s3cret",
                "webhook": {"secret": SECRET},
            },
            "chat": {"channel": "apprise", "to": "tgram://123456:AAtok3n/-100123"},
        },
    )


def test_lists_names_and_channels_only(client: TestClient) -> None:
    response = client.get("/v1/destinations")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "chat", "channel": "apprise"},
        {"name": "deploys", "channel": "webhook"},
        {"name": "ops", "channel": "email"},
    ]
    for secret in ("oncall@", "smtp-pa55", "s3cret", SECRET, "AAtok3n", "hooks.example.org"):
        assert secret not in response.text


def test_documented_in_openapi(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/destinations"]["get"]
    assert operation["summary"] or operation["description"]
    assert "200" in operation["responses"]


def test_empty_without_destinations(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "bare")
    engine = engine_for(settings)
    upgrade(engine)
    engine.dispose()
    with TestClient(create_app(settings)) as bare:
        assert bare.get("/v1/destinations").json() == []
