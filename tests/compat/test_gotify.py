"""Gotify's POST /message: token forms, JSON, urlencoded and multipart bodies, priority mapping."""

from __future__ import annotations

import pytest

from notifyd.compat.gotify import map_priority
from tests.compat.conftest import Server, Start


@pytest.mark.parametrize(
    ("gotify", "ntfy"),
    [(None, 3), (0, 1), (1, 2), (3, 2), (4, 3), (5, 3), (7, 3), (8, 4), (9, 4), (10, 5), (15, 5)],
)
def test_priority_mapping(gotify: int | None, ntfy: int) -> None:
    assert map_priority(gotify) == ntfy


def test_token_forms_and_bodies(server: Server) -> None:
    token = server.token("gotify-app", destination="deploys")
    sends = [
        {
            "json": {"message": "json", "title": "T", "priority": 8},
            "headers": {"X-Gotify-Key": token},
        },
        {"data": {"message": "form", "priority": "2"}, "params": {"token": token}},
        {
            "files": {"message": (None, "multipart"), "title": (None, "M")},
            "headers": {"Authorization": f"Bearer {token}"},
        },
    ]
    for send in sends:
        answer = server.client.post("/message", **send)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body["id"], int) and body["message"] in ("json", "form", "multipart")
    lines = server.delivered(3)
    assert {line["message"] for line in lines} == {"json", "form", "multipart"}
    assert {line["to"] for line in lines} == {"team"}
    by_message = {line["message"]: line for line in lines}
    assert by_message["json"]["priority"] == 4 and by_message["json"]["subject"] == "T"
    assert by_message["form"]["priority"] == 2
    assert by_message["multipart"]["subject"] == "M"


def test_errors_in_gotify_shape(server: Server) -> None:
    token = server.token("unbound")
    missing = server.client.post("/message", json={"message": "x"})
    assert missing.status_code == 401
    assert set(missing.json()) == {"error", "errorCode", "errorDescription"}
    unbound = server.client.post("/message", json={"message": "x"}, headers={"X-Gotify-Key": token})
    assert unbound.status_code == 400 and "--destination" in unbound.json()["errorDescription"]
    bound = server.token("bound", destination="alerts")
    empty = server.client.post("/message", json={"title": "x"}, headers={"X-Gotify-Key": bound})
    assert empty.status_code == 400 and empty.json()["errorCode"] == 400


def test_extras_kept_in_data(server: Server) -> None:
    token = server.token("with-extras", destination="alerts")
    extras = {"client::display": {"contentType": "text/markdown"}}
    answer = server.client.post(
        "/message", json={"message": "x", "extras": extras}, headers={"X-Gotify-Key": token}
    )
    assert answer.status_code == 200 and answer.json()["extras"] == extras
    [line] = server.delivered()
    assert line["data"] == {"extras": extras}


def test_single_destination_serves_an_unbound_client(start: Start) -> None:
    server = start(destinations={"only": {"channel": "log", "to": "me"}})
    answer = server.client.post("/message", json={"message": "open mode"})
    assert answer.status_code == 200, answer.text
    [line] = server.delivered()
    assert line["to"] == "me"
