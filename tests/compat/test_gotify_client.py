"""Gotify's client API against a real server, read by the PyPI ``gotify`` client itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gotify import AsyncGotify
from gotify.errors import GotifyError

from tests.compat.inbox_support import inbox_server, kept, publish
from tests.support import ServerProcess

pytestmark = [
    pytest.mark.system,
    pytest.mark.anyio,
    # The gotify client streams with websockets' legacy client.
    pytest.mark.filterwarnings("ignore:websockets.client.connect is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def create_token(server: ServerProcess, name: str, *options: str) -> str:
    return server.cli("tokens", "create", name, *options).stdout.strip().split()[-1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, str]]:
    """A server with tokens: a read token for the Gotify client (its "client token"), and a
    send token for publishing."""
    home = tmp_path_factory.mktemp("gotify-client")
    with inbox_server(home, NOTIFYD_TOKEN_CACHE_SECONDS="0") as server:
        reader = create_token(server, "gotify-app", "--scope", "read")
        yield server, reader, create_token(server, "publisher", "--scope", "send")


def api_publish(server: ServerProcess, sender: str, topic: str, text: str, **extra: object) -> None:
    answer = httpx.post(
        f"{server.url}/v1/notifications",
        json={"destination": topic, "message": text, **extra},
        headers={"Authorization": f"Bearer {sender}"},
    )
    assert answer.status_code == 202, answer.text


async def test_stream_yields_each_message_in_gotifys_shape(
    served: tuple[ServerProcess, str, str],
) -> None:
    server, token, sender = served
    async with AsyncGotify(base_url=server.url, client_token=token) as gotify:
        stream = gotify.stream()
        first = asyncio.ensure_future(stream.__anext__())
        # The socket is open once the server counts the subscriber: publish until it arrives.
        done: set[asyncio.Future[object]] = set()
        for attempt in range(50):
            await asyncio.to_thread(
                api_publish, server, sender, "phone", f"streamed {attempt}", subject="Hello",
                priority=5, data={"click": "https://example.org/c"},
            )  # fmt: skip
            done, _ = await asyncio.wait({first}, timeout=0.5)
            if done:
                break
        assert done, "the stream never yielded"
        message = first.result()
        await stream.aclose()
    assert message["title"] == "Hello" and message["message"].startswith("streamed")
    assert message["priority"] == 10  # urgent on Gotify's 0-10
    assert isinstance(message["id"], int) and isinstance(message["appid"], int)
    assert message["extras"] == {
        "client::notification": {"click": {"url": "https://example.org/c"}}
    }
    assert message["date"].endswith("Z")


async def test_get_messages_pages_backwards_and_delete(
    served: tuple[ServerProcess, str, str],
) -> None:
    server, token, sender = served
    for index in range(5):
        publish(server, "desk", f"page {index}", token=sender)
    kept(server, "desk", "page 4", token=token)
    async with AsyncGotify(base_url=server.url, client_token=token) as gotify:
        apps = {app["name"]: app for app in await gotify.get_applications()}
        assert {"phone", "desk", "ops"} <= set(apps)
        desk = apps["desk"]["id"]
        newest = await gotify.get_messages(app_id=desk, limit=2)
        assert [m["message"] for m in newest["messages"]] == ["page 4", "page 3"]
        assert newest["paging"]["size"] == 2 and newest["paging"]["limit"] == 2
        since = newest["paging"]["since"]
        assert newest["paging"]["next"] == f"/application/{desk}/message?limit=2&since={since}"
        older = await gotify.get_messages(app_id=desk, limit=2, since=since)
        assert [m["message"] for m in older["messages"]] == ["page 2", "page 1"]
        everything = await gotify.get_messages(limit=100)
        assert {m["appid"] for m in everything["messages"]} >= {desk}
        await gotify.delete_message(newest["messages"][0]["id"])
        again = await gotify.get_messages(app_id=desk, limit=2)
        assert [m["message"] for m in again["messages"]] == ["page 3", "page 2"]
        with pytest.raises(GotifyError) as missing:
            await gotify.delete_message(newest["messages"][0]["id"])
        assert missing.value.response.status_code == 404
        assert missing.value.response.json()["errorCode"] == 404
        await gotify.delete_messages(app_id=desk)
        assert (await gotify.get_messages(app_id=desk))["messages"] == []


async def test_tokens_and_bad_input_get_gotifys_errors(
    served: tuple[ServerProcess, str, str],
) -> None:
    server, _, sender = served
    async with AsyncGotify(base_url=server.url, client_token=sender) as gotify:
        with pytest.raises(GotifyError) as refused:
            await gotify.get_messages()
    assert refused.value.response.status_code == 403
    assert set(refused.value.response.json()) == {"error", "errorCode", "errorDescription"}


def test_bad_paging_and_ids_get_gotifys_400(served: tuple[ServerProcess, str, str]) -> None:
    server, token, _ = served
    for query in ("limit=0", "limit=201", "limit=abc", "since=-1", "since=" + "9" * 40):
        answer = httpx.get(f"{server.url}/message?{query}&token={token}")
        assert answer.status_code == 400, (query, answer.text)
        assert answer.json()["errorCode"] == 400
    assert httpx.get(f"{server.url}/message", headers={"X-Gotify-Key": "nope"}).status_code == 401
    assert httpx.delete(f"{server.url}/message/x1?token={token}").status_code == 400


def test_the_apps_login_flow(served: tuple[ServerProcess, str, str]) -> None:
    """Gotify's app asks /version, logs in with a user name and password (the password a notifyd
    read token), keeps the client token it gets, then reads as that client."""
    server, token, sender = served
    assert httpx.get(f"{server.url}/version").json()["version"].startswith("2.")
    login = httpx.post(f"{server.url}/client", json={"name": "Pixel"}, auth=("me", token))
    assert login.status_code == 200
    client = login.json()
    assert client["token"] == token and client["name"] == "Pixel"
    me = httpx.get(f"{server.url}/current/user", headers={"X-Gotify-Key": client["token"]})
    assert me.json()["name"] == "gotify-app" and me.json()["admin"] is False
    refused = httpx.post(f"{server.url}/client", json={"name": "x"}, auth=("me", sender))
    assert refused.status_code == 403 and refused.json()["errorCode"] == 403
    wrong = httpx.post(f"{server.url}/client", json={"name": "x"}, auth=("me", "guess"))
    assert wrong.status_code == 401
    out = httpx.delete(f"{server.url}/client/{client['id']}", headers={"X-Gotify-Key": token})
    assert out.status_code == 200


def test_a_token_bound_to_a_destination_reads_its_topics_only(tmp_path: Path) -> None:
    with inbox_server(tmp_path / "home", NOTIFYD_TOKEN_CACHE_SECONDS="0") as server:
        bound = create_token(server, "desk-app", "--scope", "read", "--destination", "desk")
        sender = create_token(server, "publisher", "--scope", "send")
        publish(server, "desk", "mine", token=sender)
        publish(server, "phone", "not mine", token=sender)
        kept(server, "desk", "mine", token=bound)
        admin = create_token(server, "admin", "--scope", "admin")
        kept(server, "phone", "not mine", token=admin)
        headers = {"X-Gotify-Key": bound}
        messages = httpx.get(f"{server.url}/message", headers=headers).json()["messages"]
        assert [m["message"] for m in messages] == ["mine"]
        apps = httpx.get(f"{server.url}/application", headers=headers).json()
        assert [app["name"] for app in apps] == ["desk"]
