"""SIGKILL mid-run, SIGTERM with runs in flight: nothing accepted is lost, and restarts recover."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx

from notifyd.channels.testing import RELEASE_FILE
from tests.support import ServerProcess, wait_for

HOLD_ENV = {
    "NOTIFYD_ENABLE_TEST_TASKS": "true",
    "NOTIFYD_LEASE_SECONDS": "2",
    "NOTIFYD_SWEEP_SECONDS": "0.5",
}


def _post(server: ServerProcess, channel: str, to: str) -> str:
    response = httpx.post(
        server.url + "/v1/notifications", json={"channel": channel, "to": to, "message": "m"}
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["tasks"][0]["id"]
    return run_id


def _run(server: ServerProcess, run_id: str) -> dict[str, Any]:
    """The run as the API shows it (the server is up)."""
    run: dict[str, Any] = httpx.get(f"{server.url}/v1/tasks/{run_id}").json()
    return run


def _run_from_store(server: ServerProcess, run_id: str) -> dict[str, Any]:
    """The run as `notifyd tasks show` reads it from the store (the server may be down)."""
    run: dict[str, Any] = json.loads(server.cli("tasks", "show", run_id, "--json").stdout)
    return run


def test_a_run_killed_mid_attempt_is_rescued_and_succeeds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home, env=HOLD_ENV).start()
    try:
        run_id = _post(server, "test-hold", "held")
        wait_for(lambda: _run(server, run_id)["status"] == "running", what="the run to start")
        server.kill()
        assert _run_from_store(server, run_id)["status"] == "running"  # as the dead process left it
        (home / RELEASE_FILE).touch()
        server = ServerProcess(home, env=HOLD_ENV, port=server.port).start()
        run = wait_for(
            lambda: (r := _run(server, run_id))["status"] == "succeeded" and r,
            what="the rescued run to succeed",
        )
    finally:
        server.__exit__()
    outcomes = [a["outcome"] for a in run["attempts_detail"]]
    assert outcomes == ["interrupted", "succeeded"]
    assert run["attempts_detail"][0]["error_type"] == "LeaseExpired"
    lines = (home / "notifications.log").read_text().splitlines()
    assert [json.loads(line)["delivery_id"] for line in lines] == [run_id]


def test_sigterm_leaves_no_run_running_and_the_next_start_resumes_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**HOLD_ENV, "NOTIFYD_LEASE_SECONDS": "600", "NOTIFYD_GRACE_SECONDS": "1"}
    server = ServerProcess(home, env=env).start()
    held = [_post(server, "test-hold", f"held{i}") for i in range(3)]
    quick = _post(server, "log", "quick")
    wait_for(
        lambda: all(_run(server, r)["status"] == "running" for r in held), what="runs to start"
    )
    # uvicorn re-raises SIGTERM after its clean shutdown, as a signal-stopped process should.
    assert server.terminate() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    runs = server.runs()
    assert [r for r in runs if r["status"] == "running"] == []
    assert {r["id"]: r["status"] for r in runs}[quick] == "succeeded"
    for run_id in held:
        run = _run_from_store(server, run_id)
        assert run["status"] == "retrying"
        assert run["attempts_detail"][-1]["outcome"] == "interrupted"
    (home / RELEASE_FILE).touch()
    # The lease is 10 minutes: only the clean release lets the restart resume at once.
    with ServerProcess(home, env=env, port=server.port) as again:
        wait_for(
            lambda: all(_run(again, r)["status"] == "succeeded" for r in held),
            timeout=20,
            what="released runs to succeed",
        )
    assert "released 3 unfinished run(s)" in server.log()
