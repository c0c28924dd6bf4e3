"""A subscriber that reconnects with ``since=<last id>`` misses nothing and sees nothing twice,
across a SIGKILL of the server mid-burst and its restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.compat.inbox_support import Lines, inbox_server
from tests.support import wait_for

pytestmark = pytest.mark.system
BEFORE_KILL = 60
AFTER_RESTART = 30


class Subscriber:
    """Follows /phone/json like ntfy's app: on a lost connection, reconnect with since=last."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.connections = 0
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        while not self.stop.is_set():
            since = f"?since={self.ids[-1]}" if self.ids else ""
            try:
                with Lines(f"{self.url}/phone/json{since}") as stream:
                    self.connections += 1
                    self.connected.set()
                    while not self.stop.is_set():
                        try:
                            event = stream.event(timeout=0.5)
                        except AssertionError:
                            continue  # quiet: look at stop, keep reading
                        if event["event"] == "message":
                            self.ids.append(event["id"])
                            self.texts.append(event["message"])
            except (OSError, EOFError, ValueError):
                time.sleep(0.05)  # the server is down: try again


def test_reconnecting_with_since_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    accepted: list[str] = []
    uncertain: list[str] = []
    refused = 0
    # A run claimed when the server died waits out its lease: keep that short.
    lease = {"NOTIFYD_LEASE_SECONDS": "2", "NOTIFYD_SWEEP_SECONDS": "0.5"}
    with inbox_server(tmp_path / "home", **lease) as server:
        subscriber = Subscriber(server.url)
        assert subscriber.connected.wait(10)
        restarted = threading.Event()

        def publish_all() -> None:
            nonlocal refused
            after_restart = 0
            index = 0
            with httpx.Client(timeout=5) as client:
                while after_restart < AFTER_RESTART:
                    index += 1
                    text = f"burst {index}"
                    try:
                        answer = client.post(f"{server.url}/phone", content=text)
                    except httpx.ConnectError:
                        refused += 1  # not accepted: the subscriber must not see it either
                        time.sleep(0.01)
                        continue
                    except httpx.HTTPError:
                        uncertain.append(text)  # cut off by the kill: stored, or not
                        continue
                    if answer.status_code == 200:
                        accepted.append(text)
                        after_restart += restarted.is_set()

        publisher = threading.Thread(target=publish_all)
        publisher.start()
        wait_for(lambda: len(accepted) >= BEFORE_KILL or None, timeout=30, what="a burst")
        server.kill()  # mid-burst: some are accepted and not yet offered to anyone
        server.start()
        restarted.set()
        publisher.join(60)
        wait_for(
            lambda: set(subscriber.texts) >= set(accepted) or None,
            timeout=30,
            what=f"every accepted message ({len(accepted)}) at the subscriber",
        )
        subscriber.stop.set()
        subscriber.thread.join(10)
    assert subscriber.connections >= 2 and refused > 0
    assert len(subscriber.ids) == len(set(subscriber.ids)), "a message came twice"
    assert set(subscriber.texts) - set(accepted) <= set(uncertain), "a message never accepted came"
