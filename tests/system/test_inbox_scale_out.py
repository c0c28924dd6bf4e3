"""Subscribe on PostgreSQL with several servers: a message published through one process reaches
the subscribers of every other (LISTEN/NOTIFY), once each, in order."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.compat.inbox_support import INBOX_CONFIG, Lines, publish
from tests.support import ServerProcess

pytestmark = pytest.mark.postgres


def test_a_subscriber_of_one_server_gets_what_another_published(
    tmp_path: Path, postgres_url: str
) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(INBOX_CONFIG)
    env = {"NOTIFYD_DATABASE_URL": postgres_url, "NOTIFYD_CONFIG": str(config)}
    with (
        ServerProcess(tmp_path / "a", env=env) as first,
        ServerProcess(tmp_path / "b", env=env) as second,
        Lines(f"{first.url}/phone/json") as on_first,
        Lines(f"{second.url}/phone/json") as on_second,
    ):
        assert on_first.event()["event"] == "open"
        assert on_second.event()["event"] == "open"
        sent = [f"relayed {index}" for index in range(20)]
        for index, text in enumerate(sent):
            publish(second if index % 2 else first, "phone", text)
        for stream in (on_first, on_second):
            got: list[str] = []
            while len(got) < len(sent):
                event = stream.event(timeout=15)
                if event["event"] == "message":
                    got.append(event["message"])
            assert sorted(got) == sorted(sent)  # each once, on both servers
        # Replayed from either server in the same order (the order of publication).
        replays = [
            [
                json.loads(line)["id"]
                for line in httpx.get(f"{s.url}/phone/json?poll=1").text.splitlines()
            ]
            for s in (first, second)
        ]
        assert replays[0] == replays[1] and len(replays[0]) == len(sent)
