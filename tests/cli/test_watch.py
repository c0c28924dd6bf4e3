"""``tasks watch``: a live view of runs, readable at 80 columns, data shown literally."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app
from tests.support import wait_for

NASTY = "[/x][red]x[/red]<b>"


def _submit(client: TestClient, **body: object) -> str:
    answer = client.post("/v1/notifications", json=body)
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["tasks"][0]["id"]
    return run_id


@pytest.fixture
def runs(client: TestClient) -> tuple[str, str]:
    ok = _submit(client, to=[NASTY], message="m")
    bad = _submit(client, channel="webhook", to=["http://127.0.0.1:9/hook"], message="m")
    wait_for(lambda: client.get(f"/v1/tasks/{bad}").json()["status"] == "failed", what="fail")
    wait_for(lambda: client.get(f"/v1/tasks/{ok}").json()["status"] == "succeeded", what="ok")
    return ok, bad


@pytest.mark.parametrize("columns", ["80", "200"])
def test_one_frame_shows_counts_newest_runs_and_failures(
    runner: CliRunner, runs: tuple[str, str], columns: str
) -> None:
    ok, bad = runs
    result = runner.invoke(app, ["tasks", "watch", "--once"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "succeeded 1" in out and "failed 1" in out
    assert "newest runs" in out and "recent failures" in out
    assert ok in out and bad in out
    if columns == "200":
        assert NASTY in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)


def test_filters_narrow_the_newest_runs(runner: CliRunner, runs: tuple[str, str]) -> None:
    ok, bad = runs
    result = runner.invoke(
        app, ["tasks", "watch", "--once", "--status", "succeeded", "--channel", "log"]
    )
    assert result.exit_code == 0, result.output
    newest = result.output.split("recent failures")[0]
    assert ok in newest and bad not in newest
    assert "runs (log)" in result.output


def test_it_refreshes_until_interrupted(
    runner: CliRunner, runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = []

    def sleep(seconds: float) -> None:
        frames.append(seconds)
        if len(frames) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    result = runner.invoke(app, ["tasks", "watch", "--interval", "0.5"])
    assert result.exit_code == 0, result.output
    assert frames == [0.5, 0.5, 0.5]
    assert runs[0] in result.output
