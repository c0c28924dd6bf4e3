"""A new user's path: serve, send, see the run succeed, find the line in the log."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import ServerProcess, wait_for


def test_serve_send_and_inspect(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ServerProcess(home) as server:
        sent = server.cli(
            "send", "--to", "alice@example.com", "--subject", "Hi", "--message", "Hello"
        )
        assert "ntf_" in sent.stdout and "run_" in sent.stdout
        runs = wait_for(
            lambda: (r := server.runs()) and r[0]["status"] == "succeeded" and r,
            what="the run to succeed",
        )
        assert runs[0]["recipient"] == "alice@example.com"
        lines = [json.loads(line) for line in (home / "notifications.log").read_text().splitlines()]
        assert lines[0]["to"] == "alice@example.com" and lines[0]["message"] == "Hello"
        assert lines[0]["delivery_id"] == runs[0]["id"]
        shown = server.cli("tasks", "show", runs[0]["id"])
        assert "attempt 1" in shown.stdout
        waited = server.cli("send", "--to", "bob", "-m", "again", "--wait")
        assert "succeeded" in waited.stdout
    # The tasks commands read the store directly: they work with the server down.
    assert len(server.runs()) == 2
