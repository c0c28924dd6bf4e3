"""``tasks list`` pages (how many more, --cursor, --all), ``tasks retry`` on a retrying run,
and ``notifications show``: through the CLI against a real store."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from cli.main import app
from notifyd.db import write_connection
from notifyd.timeutil import utcnow
from notifyd.tracking.admin import RUNS
from tests.tracking.conftest import load_run

RUNS_STORED = 25


@pytest.fixture
def held(held_client: TestClient) -> TestClient:
    """The API with no dispatcher in the process: runs stay as the test leaves them."""
    return held_client


def _submit(client: TestClient, count: int) -> list[str]:
    """One notification to ``count`` recipients; its run ids, oldest first."""
    response = client.post(
        "/v1/notifications", json={"to": [f"user{i}" for i in range(count)], "message": "m"}
    )
    assert response.status_code == 202, response.text
    return [task["id"] for task in response.json()["tasks"]]


def _cursor(output: str) -> str:
    found: list[str] = re.findall(r"--cursor (\S+)", output)
    [cursor] = found
    return cursor


def test_a_page_says_how_many_more_and_the_cursor_continues(
    runner: CliRunner, held: TestClient
) -> None:
    newest_first = sorted(_submit(held, RUNS_STORED), reverse=True)  # ids sort by creation
    first = runner.invoke(app, ["tasks", "list", "--limit", "10"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert f"15 more of {RUNS_STORED} matching" in first.output
    assert _cursor(first.output) == newest_first[9]
    second = runner.invoke(
        app, ["tasks", "list", "--limit", "10", "--cursor", newest_first[9], "--json"]
    )
    assert second.exit_code == 0, second.output
    assert [run["id"] for run in json.loads(second.stdout)] == newest_first[10:20]
    assert _cursor(second.stderr) == newest_first[19]  # stdout stays one JSON document
    last = runner.invoke(app, ["tasks", "list", "--limit", "10", "--cursor", newest_first[19]])
    assert last.exit_code == 0, last.output
    assert "--cursor" not in last.output and "more of" not in last.output
    filtered = runner.invoke(app, ["tasks", "list", "--status", "failed"])
    assert "more of" not in filtered.output


def test_all_streams_every_page(runner: CliRunner, held: TestClient) -> None:
    newest_first = sorted(_submit(held, RUNS_STORED), reverse=True)  # ids sort by creation
    lines = runner.invoke(app, ["tasks", "list", "--all", "--json", "--limit", "7"])
    assert lines.exit_code == 0, lines.output
    assert [json.loads(line)["id"] for line in lines.stdout.splitlines()] == newest_first
    tables = runner.invoke(app, ["tasks", "list", "--all", "--limit", "10"])
    assert tables.exit_code == 0, tables.output
    assert re.findall(r"(\d+) run\(s\), newest first", tables.output) == ["10", "10", "5"]
    assert all(run_id in tables.output for run_id in newest_first)
    rest = runner.invoke(app, ["tasks", "list", "--all", "--json", "--cursor", newest_first[4]])
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == newest_first[5:]


def _make_retrying(engine: Engine, run_id: str) -> None:
    with write_connection(engine) as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status="retrying",
                attempts=2,
                max_attempts=8,
                next_attempt_at=utcnow() + timedelta(hours=2),
                last_error="TransientDeliveryError: 451 try later",
            )
        )


def test_retry_runs_a_retrying_run_now_without_charging_an_attempt(
    runner: CliRunner, held: TestClient, migrated: Engine
) -> None:
    by_cli, by_api = _submit(held, 2)
    for run_id in (by_cli, by_api):
        _make_retrying(migrated, run_id)
    before = utcnow()
    result = runner.invoke(app, ["tasks", "retry", by_cli])
    assert result.exit_code == 0, result.output
    assert "run now" in result.output and "attempts are unchanged" in result.output
    answer = held.post(f"/v1/tasks/{by_api}/retry")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued"
    assert (answer.json()["attempts"], answer.json()["max_attempts"]) == (2, 8)
    for run_id in (by_cli, by_api):
        row = load_run(migrated, run_id)
        assert (row.status, row.attempts, row.max_attempts) == ("queued", 2, 8)
        due = row.next_attempt_at.replace(tzinfo=before.tzinfo)
        assert before - timedelta(seconds=1) <= due <= utcnow()


def test_retry_help_says_a_retrying_run_runs_now(runner: CliRunner) -> None:
    shown = runner.invoke(app, ["tasks", "retry", "--help"], env={"COLUMNS": "200"})
    assert "a retrying one at once" in " ".join(shown.output.split())


def test_notifications_show(runner: CliRunner, held: TestClient) -> None:
    response = held.post(
        "/v1/notifications",
        json={"to": ["alice", "[red]bob[/red]"], "subject": "[/x]", "message": "<b>hi</b>"},
    )
    note = response.json()
    shown = runner.invoke(app, ["notifications", "show", note["id"]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for text in (note["id"], "[red]bob[/red]", "[/x]", "<b>hi</b>", "pending"):
        assert text in shown.output
    assert all(task["id"] in shown.output for task in note["tasks"])
    as_json = json.loads(runner.invoke(app, ["notifications", "show", note["id"], "--json"]).stdout)
    assert as_json["id"] == note["id"] and as_json["to"] == ["alice", "[red]bob[/red]"]
    missing = runner.invoke(app, ["notifications", "show", "ntf_nope"])
    assert missing.exit_code == 1 and "no notification with id 'ntf_nope'" in missing.output
