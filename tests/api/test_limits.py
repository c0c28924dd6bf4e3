"""Hostile input: bodies over the limit (declared or chunked) get 413; fields over theirs get 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from notifyd.api.bodylimit import BodyLimitMiddleware
from notifyd.config import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_DATA_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_RECIPIENT_CHARS,
    MAX_RECIPIENTS,
    MAX_SUBJECT_CHARS,
)

JSON = {"content-type": "application/json"}


def chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    """A body of ``total`` bytes in chunks: sent with Transfer-Encoding: chunked, no length."""
    body = json.dumps({"to": "ops", "message": "x" * total}).encode()
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_413(response: Any) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert str(DEFAULT_MAX_BODY_BYTES) in response.json()["detail"]


def test_declared_length_over_the_limit(client: TestClient) -> None:
    body = b"{" + b" " * DEFAULT_MAX_BODY_BYTES + b"}"
    assert_413(client.post("/v1/notifications", content=body, headers=JSON))


def test_chunked_body_over_the_limit(client: TestClient) -> None:
    response = client.post("/v1/notifications", content=chunks(100_000), headers=JSON)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_413(response)


def test_chunked_body_under_the_limit(client: TestClient) -> None:
    response = client.post("/v1/notifications", content=chunks(1000, size=100), headers=JSON)
    assert response.status_code == 202, response.text


def test_limit_is_configurable(tmp_path: Any) -> None:
    from notifyd.api.app import create_app
    from notifyd.db import engine_for, upgrade
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "home", max_body_bytes=100)
    upgrade(engine_for(settings))
    with TestClient(create_app(settings)) as client:
        body = json.dumps({"to": "ops", "message": "x" * 200})
        assert client.post("/v1/notifications", content=body, headers=JSON).status_code == 413
        small = json.dumps({"to": "ops", "message": "x"})
        assert client.post("/v1/notifications", content=small, headers=JSON).status_code == 202


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        [],
        # A small length beside chunked encoding claims nothing: the chunks are counted.
        [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")],
    ],
    ids=["no length", "length and chunked"],
)
async def test_middleware_counts_streamed_bytes(headers: list[tuple[bytes, bytes]]) -> None:
    """Raw ASGI: a body with no Content-Length, in parts, stops being read once over the limit."""
    read: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    parts = [b"x" * 40] * 10
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await BodyLimitMiddleware(app, max_bytes=100)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert sum(read) <= 100  # the app never saw the byte that crossed the limit
    assert len(incoming) == 7  # and nothing more was read from the client


LONG = {
    "message": {"to": "ops", "message": "x" * (MAX_MESSAGE_CHARS + 1)},
    "subject": {"to": "ops", "message": "m", "subject": "s" * (MAX_SUBJECT_CHARS + 1)},
    "to": {"to": [f"r{n}" for n in range(MAX_RECIPIENTS + 1)], "message": "m"},
    "to ": {"to": "r" * (MAX_RECIPIENT_CHARS + 1), "message": "m"},
    "data": {"to": "ops", "message": "m", "data": {"blob": "b" * MAX_DATA_BYTES}},
}


@pytest.mark.parametrize("field", list(LONG))
def test_field_limits_are_422_naming_the_field(client: TestClient, field: str) -> None:
    response = client.post("/v1/notifications", json=LONG[field])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == [field.strip()]
    assert problem["detail"].startswith(field.strip() + ":")


def test_at_the_limits_is_accepted(client: TestClient) -> None:
    body = {
        "to": [f"r{n}" for n in range(MAX_RECIPIENTS)],
        "message": "x" * (MAX_MESSAGE_CHARS // 2),
        "subject": "s" * MAX_SUBJECT_CHARS,
        "data": {"blob": "b" * (MAX_DATA_BYTES // 2)},
    }
    assert client.post("/v1/notifications", json=body).status_code == 202


def test_nesting_too_deep_to_parse_is_a_problem_not_a_crash(client: TestClient) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    body = '{"to": "ops", "message": "m", "data": {"deep": ' + deep + "}}"
    response = client.post("/v1/notifications", content=body, headers=JSON)
    assert response.status_code in (400, 413, 422)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b"null", b'{"to": "ops"}', b'{"to": "ops", "message": 5}',
     b'{"to": "ops", "message": "m", "extra": 1}', b"\xff\xfe", b'{"to": "ops", "message": "\\ud800"}'],
)  # fmt: skip
def test_malformed_bodies_are_problems(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/notifications", content=body, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("message", '{"to": "ops", "message": "a\\u0000b"}'),
        ("subject", '{"to": "ops", "message": "m", "subject": "\\u0000"}'),
        ("to", '{"to": ["ops", "x\\u0000"], "message": "m"}'),
        ("to", '{"to": "\\udfff", "message": "m"}'),
        ("data", '{"to": "ops", "message": "m", "data": {"n": NaN}}'),
        ("data", '{"to": "ops", "message": "m", "data": {"n": 1e999}}'),
    ],
)
def test_text_a_store_cannot_keep_is_422(client: TestClient, field: str, body: str) -> None:
    """NUL (PostgreSQL refuses it), lone surrogates (every driver does), NaN (not JSON)."""
    response = client.post("/v1/notifications", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/tasks/run%00", "run_id"),
        ("/v1/notifications/%00", "notification_id"),
        ("/v1/tasks?channel=log%00", "channel"),
        ("/v1/tasks?cursor=%00", "cursor"),
    ],
)
def test_nul_in_parameters_is_422(client: TestClient, path: str, field: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
