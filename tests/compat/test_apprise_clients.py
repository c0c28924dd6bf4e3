"""Apprise, a client nobody here wrote, publishes to a real ``notifyd serve`` through its ntfy://,
gotify:// and json:// plugins; the log channel shows each delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apprise
import pytest

from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.system

CONFIG = """
[destinations.backups]
channel = "log"
to = "ops"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "notifyd.toml"
    config.write_text(CONFIG)
    with ServerProcess(
        tmp_path / "home",
        env={"NOTIFYD_CONFIG": str(config), "NOTIFYD_TOKEN_CACHE_SECONDS": "0"},
    ) as running:
        yield running


def _deliveries(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    log = server.home / "notifications.log"

    def lines() -> list[dict[str, Any]] | None:
        if not log.exists():
            return None
        found = [json.loads(line) for line in log.read_text().splitlines() if line]
        return found if len(found) >= count else None

    return wait_for(lines, timeout=30, interval=0.05, what=f"{count} deliveries")


def _notify(url: str, body: str, title: str) -> bool:
    sender = apprise.Apprise()
    assert sender.add(url), url
    return bool(sender.notify(body=body, title=title))


def _urls(server: ServerProcess, token: str | None) -> dict[str, str]:
    hostport = f"127.0.0.1:{server.port}"
    if token is None:
        return {
            "ntfy": f"ntfy://{hostport}/backups?priority=high",
            "gotify": f"gotify://{hostport}/openmodekey?priority=8",
            "json": f"json://{hostport}/?:topic=backups",
        }
    return {
        "ntfy": f"ntfy://{hostport}/backups?token={token}&priority=high",
        "gotify": f"gotify://{hostport}/{token}?priority=8",
        "json": f"json://{hostport}/?:topic=backups&+Authorization={quote('Bearer ' + token)}",
    }


def test_apprise_plugins_without_a_token(server: ServerProcess) -> None:
    for plugin, url in _urls(server, None).items():
        assert _notify(url, f"{plugin} body", f"{plugin} title"), plugin
    lines = _deliveries(server, 3)
    got = {line["subject"]: line for line in lines}
    assert set(got) == {"ntfy title", "gotify title", "json title"}
    assert {line["to"] for line in lines} == {"ops"}
    assert got["ntfy title"]["message"] == "ntfy body"
    assert got["ntfy title"]["priority"] == 4
    assert got["gotify title"]["priority"] == 4


def test_apprise_plugins_with_a_token(server: ServerProcess) -> None:
    token = server.cli(
        "tokens", "create", "apprise", "--scope", "send", "--destination", "backups"
    ).stdout.strip()
    listed = json.loads(server.cli("tokens", "list", "--json").stdout)
    assert [(t["name"], t["destination"]) for t in listed] == [("apprise", "backups")]
    # Refused without the token now that one exists...
    for plugin, url in _urls(server, None).items():
        assert not _notify(url, "refused", plugin), plugin
    # ...and accepted with it, in each plugin's own way of sending it.
    for plugin, url in _urls(server, token).items():
        assert _notify(url, f"{plugin} body", f"{plugin} title"), plugin
    basic = f"ntfy://apprise:{token}@127.0.0.1:{server.port}/backups"
    assert _notify(basic, "basic body", "basic title")
    lines = _deliveries(server, 4)
    assert {line["subject"] for line in lines} == {
        "ntfy title",
        "gotify title",
        "json title",
        "basic title",
    }


def test_a_scheduled_notification_survives_a_restart(server: ServerProcess) -> None:
    sent = server.cli("send", "-d", "backups", "-m", "after restart", "--in", "3", "--json")
    [task] = json.loads(sent.stdout)["tasks"]
    listed = server.cli("tasks", "list").stdout
    assert "scheduled" in listed and "due" in listed
    server.terminate()
    server.start()
    [line] = _deliveries(server, 1)
    assert line["message"] == "after restart"
    shown = server.cli("tasks", "show", task["id"]).stdout
    assert "succeeded" in shown
