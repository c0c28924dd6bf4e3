"""Input at the edges is 422, never 500 (issue 13, items 10 and 11)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notifyd.config import MAX_DATA_DEPTH
from notifyd.timeutil import parse_since

ENDS_OF_TIME = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ENDS_OF_TIME)
def test_times_without_a_utc_form_are_422(client: TestClient, name: str, value: str) -> None:
    response = client.get("/v1/tasks", params={name: value})
    assert response.status_code == 422, response.text
    assert "out of range" in response.text


@pytest.mark.parametrize("value", ENDS_OF_TIME)
def test_parse_since_refuses_times_without_a_utc_form(value: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_since(value)


def _nested(levels: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        data = {"a": data}
    return data


def _post(client: TestClient, data: Any, *, content_type: str = "application/json") -> Any:
    body = '{"to": "ops", "message": "m", "data": ' + data + "}"
    return client.post(
        "/v1/notifications", content=body.encode(), headers={"Content-Type": content_type}
    )


@pytest.mark.parametrize("levels", [MAX_DATA_DEPTH + 1, 255, 400])
def test_data_nested_too_deep_is_422(client: TestClient, levels: int) -> None:
    response = _post(client, json.dumps(_nested(levels)))
    assert response.status_code == 422, response.text[:200]


def test_data_at_the_depth_limit_is_accepted_and_read_back(client: TestClient) -> None:
    response = _post(client, json.dumps(_nested(MAX_DATA_DEPTH)))
    assert response.status_code == 202, response.text
    read = client.get(f"/v1/notifications/{response.json()['id']}")
    assert read.status_code == 200


@pytest.mark.parametrize(
    "data", ['{"\\ud800": 1}', '{"k": "\\udfff"}', '{"k": ["x", {"y": "a\\ud83d"}]}']
)
@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.x+json"])
def test_lone_surrogates_in_data_are_422(client: TestClient, data: str, content_type: str) -> None:
    response = _post(client, data, content_type=content_type)
    assert response.status_code == 422, response.text
    assert "surrogates" in response.text


@pytest.mark.parametrize("value", [True, False])
def test_boolean_delay_is_refused_not_read_as_seconds(client: TestClient, value: bool) -> None:
    # A boolean is no duration: str | float must not turn true into 1.0 first (issue 18, Low 6).
    response = client.post("/v1/notifications", json={"to": "a", "message": "m", "delay": value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "delay"
