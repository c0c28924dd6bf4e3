"""``send --wait`` against a fake server: ids at once, each run's state, and the exit codes."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.send import EXIT_TIMED_OUT, EXIT_UNDELIVERED
from tests.cli.conftest import fake_server


def _server(run_status: str, note_status: str, code: int = 202):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            tasks = [{"id": "run_1", "channel": "log", "to": "a", "status": "queued"}]
            return httpx.Response(code, json={"id": "ntf_1", "status": "accepted", "tasks": tasks})
        if request.url.path == "/v1/tasks/run_1":
            return httpx.Response(
                200, json={"id": "run_1", "status": run_status, "last_error": None}
            )
        return httpx.Response(200, json={"id": "ntf_1", "status": note_status, "tasks": []})

    return handler


def test_timeout_still_prints_the_json_with_each_state(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_server(monkeypatch, _server("retrying", "pending")):
        result = runner.invoke(
            app, ["send", "-t", "a", "-m", "x", "--wait", "--json", "--timeout", "0"]
        )
    assert result.exit_code == EXIT_TIMED_OUT, result.output
    body = json.loads(result.stdout)
    assert body["id"] == "ntf_1" and body["status"] == "pending"
    assert body["tasks"][0]["status"] == "retrying"
    assert "ntf_1" in result.stderr and "gave up waiting" in result.stderr


def test_timeout_in_text_names_the_ids(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_server(monkeypatch, _server("queued", "pending")):
        result = runner.invoke(app, ["send", "-t", "a", "-m", "x", "--wait", "--timeout", "0"])
    assert result.exit_code == EXIT_TIMED_OUT
    assert result.stdout.startswith("notification ntf_1 accepted")
    assert "run_1" in result.stdout and "run_1: queued" in result.stderr


def test_a_failed_run_has_its_own_exit_code(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_server(monkeypatch, _server("failed", "failed")):
        result = runner.invoke(app, ["send", "-t", "a", "-m", "x", "--wait", "--json"])
    assert result.exit_code == EXIT_UNDELIVERED
    assert json.loads(result.stdout)["status"] == "failed"


def test_delivered_is_not_reported_as_accepted(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_server(monkeypatch, _server("succeeded", "delivered")):
        result = runner.invoke(app, ["send", "-t", "a", "-m", "x", "--wait", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "delivered" and body["tasks"][0]["status"] == "succeeded"


def test_401_says_how_to_set_the_token(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        problem = {"title": "Unauthorized", "detail": "send `Authorization: Bearer <token>`"}
        return httpx.Response(401, json=problem)

    monkeypatch.delenv("NOTIFYD_TOKEN", raising=False)
    with fake_server(monkeypatch, handler):
        result = runner.invoke(app, ["send", "-t", "a", "-m", "x"])
    assert result.exit_code == 1
    assert "NOTIFYD_TOKEN" in result.output and "Authorization" not in result.output
