"""A subscriber that stops reading is dropped; publishing and the other subscribers go on."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.compat.inbox_support import Lines, inbox_server
from tests.support import wait_for

pytestmark = pytest.mark.system
MESSAGES = 150
BIG = "x" * 30_000


def test_a_stalled_subscriber_is_cut_off_and_nobody_waits_for_it(tmp_path: Path) -> None:
    with inbox_server(tmp_path / "home", NOTIFYD_INBOX__BUFFER="4") as server:
        stalled = socket.socket()
        stalled.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )  # before connect: a small window
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /phone/json HTTP/1.1\r\nHost: x\r\n\r\n")
        with Lines(f"{server.url}/phone/json") as reader, httpx.Client(timeout=10) as client:
            assert reader.event()["event"] == "open"
            for index in range(MESSAGES):
                answer = client.post(f"{server.url}/phone", content=f"{index} {BIG}")
                assert answer.status_code == 200
            got = 0
            while got < MESSAGES:
                if reader.event(timeout=30)["event"] == "message":
                    got += 1
        # The stalled one was dropped: reading now, its stream ends instead of going on.
        stalled.settimeout(30)
        received = 0
        while chunk := stalled.recv(65536):
            received += len(chunk)
        stalled.close()
        assert received < MESSAGES * len(BIG)
        wait_for(lambda: "dropped" in server.log() or None, timeout=10, what="the drop in the log")
