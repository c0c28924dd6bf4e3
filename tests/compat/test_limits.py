"""A body over the limit on an ntfy or Gotify path is refused in that peer's 413 shape, declared
or chunked (issue 18, Low 4); notifyd's own paths, the hooks included, keep problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from notifyd.compat.dialects import peer_of
from notifyd.config import DEFAULT_MAX_BODY_BYTES
from tests.compat.conftest import Server

DECLARED = b"x" * 70_000


def chunked(total: int = 80_000, size: int = 8192) -> Iterator[bytes]:
    """``total`` bytes sent with Transfer-Encoding: chunked (no length to refuse up front)."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def _bodies() -> list[Any]:
    return [
        pytest.param(lambda: DECLARED, id="70KB-declared"),
        pytest.param(chunked, id="80KB-chunked"),
    ]


def send(server: Server, method: str, path: str, body: Any, **kwargs: Any) -> Any:
    """The request, checked to have gone as meant: with a length, or chunked without one."""
    content = body()
    answer = server.client.request(method, path, content=content, **kwargs)
    if isinstance(content, bytes):
        assert answer.request.headers["content-length"] == str(len(content))
    else:
        assert answer.request.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in answer.request.headers
    return answer


def assert_ntfy_413(answer: Any, code: int) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["code"], body["http"]) == (code, 413), body
    assert str(DEFAULT_MAX_BODY_BYTES) in body["error"]


@pytest.mark.parametrize("body", _bodies())
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_ntfy_topic_413(server: Server, method: str, body: Any) -> None:
    assert_ntfy_413(send(server, method, "/alerts", body), 41301)


@pytest.mark.parametrize("body", _bodies())
def test_ntfy_json_413(server: Server, body: Any) -> None:
    assert_ntfy_413(send(server, "POST", "/", body), 41303)


@pytest.mark.parametrize("body", _bodies())
def test_gotify_413(server: Server, body: Any) -> None:
    answer = send(server, "POST", "/message", body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": HTTPStatus(413).phrase,
        "errorCode": 413,
        "errorDescription": f"the request body is larger than the limit of "
        f"{DEFAULT_MAX_BODY_BYTES} bytes",
    }


@pytest.mark.parametrize("body", _bodies())
@pytest.mark.parametrize("path", ["/v1/hooks/alertmanager/alerts", "/v1/notifications"])
def test_own_paths_keep_problem_json(server: Server, path: str, body: Any) -> None:
    answer = send(server, "POST", path, body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "peer"),
    [
        ("POST", "/message", "gotify"),
        ("PUT", "/message", None),  # reserved: not a topic
        ("POST", "/", "ntfy-json"),
        ("PUT", "/alerts", "ntfy"),
        ("POST", "/alerts", "ntfy"),
        ("GET", "/alerts/publish", "ntfy"),
        ("GET", "/alerts", None),
        ("POST", "/v1/notifications", None),
        ("POST", "/v1/hooks/grafana/alerts", None),
        ("POST", "/ui", None),
        ("POST", "/alerts/", None),
        ("POST", "//", None),
    ],
)
def test_peer_of(method: str, path: str, peer: str | None) -> None:
    assert peer_of(method, path) == peer
