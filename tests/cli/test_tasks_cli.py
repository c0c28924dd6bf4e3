"""``notifyd tasks`` and ``notifyd db``: read and steer the store directly, server up or down."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from cli.main import app
from notifyd.db import write_connection
from notifyd.models import RunStatus
from notifyd.timeutil import utcnow
from notifyd.tracking.admin import RUNS
from tests.support import wait_for


def _invoke(runner: CliRunner, *args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


def _delivered(runner: CliRunner, client: TestClient, count: int = 2) -> list[str]:
    ids = []
    for i in range(count):
        response = client.post(
            "/v1/notifications", json={"to": f"user{i}@example.com", "message": "m"}
        )
        ids.append(response.json()["tasks"][0]["id"])
    wait_for(
        lambda: all(client.get(f"/v1/tasks/{i}").json()["status"] == "succeeded" for i in ids),
        what="deliveries",
    )
    return ids


def _set_status(engine: Engine, run_id: str, status: RunStatus) -> None:
    with write_connection(engine) as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(status=status.value, finished_at=utcnow())
        )


def test_list_table_and_json(runner: CliRunner, client: TestClient) -> None:
    ids = _delivered(runner, client)
    table = runner.invoke(app, ["tasks", "list"], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    for column in ("id", "status", "channel", "recipient", "attempts", "created", "duration"):
        assert column in table.output
    assert ids[0] in table.output and "succeeded" in table.output
    listed = json.loads(_invoke(runner, "tasks", "list", "--json").output)
    assert [r["id"] for r in listed] == list(reversed(ids))
    assert listed[0]["recipient"] == "user1@example.com"
    one = json.loads(_invoke(runner, "tasks", "list", "--json", "--limit", "1").stdout)
    assert len(one) == 1
    assert json.loads(_invoke(runner, "tasks", "list", "--json", "--status", "failed").output) == []
    assert json.loads(_invoke(runner, "tasks", "list", "--json", "--channel", "email").output) == []
    assert json.loads(_invoke(runner, "tasks", "list", "--json", "--since", "1h").output) != []
    assert json.loads(_invoke(runner, "tasks", "list", "--json", "--until", "1h").output) == []


def test_show_in_full_and_as_json(runner: CliRunner, client: TestClient) -> None:
    [run_id] = _delivered(runner, client, 1)
    shown = _invoke(runner, "tasks", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "attempt 1" in shown.output and "succeeded" in shown.output
    assert "user0@example.com" in shown.output
    data = json.loads(_invoke(runner, "tasks", "show", run_id, "--json").output)
    assert data["id"] == run_id and data["attempts_detail"][0]["outcome"] == "succeeded"


def test_unknown_id_is_one_line_and_exit_1(runner: CliRunner, migrated: Engine) -> None:
    result = _invoke(runner, "tasks", "show", "run_missing")
    assert result.exit_code == 1
    assert "run_missing" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tasks_without_a_database_say_how_to_make_one(runner: CliRunner) -> None:
    result = _invoke(runner, "tasks", "list")
    assert result.exit_code == 1
    assert "notifyd db upgrade" in result.output


def test_bad_time_filter_is_one_line(runner: CliRunner, migrated: Engine) -> None:
    result = _invoke(runner, "tasks", "list", "--since", "yesterday-ish")
    assert result.exit_code == 1 and "--since" in result.output


def test_retry_cancel_and_their_refusals(
    runner: CliRunner, client: TestClient, migrated: Engine
) -> None:
    first, second = _delivered(runner, client)
    refused = _invoke(runner, "tasks", "retry", first)
    assert refused.exit_code == 1 and "only failed or cancelled" in refused.output
    _set_status(migrated, first, RunStatus.failed)
    assert _invoke(runner, "tasks", "retry", first).exit_code == 0
    wait_for(lambda: client.get(f"/v1/tasks/{first}").json()["status"] == "succeeded", what="retry")
    assert client.get(f"/v1/tasks/{first}").json()["attempts"] == 2
    refused = _invoke(runner, "tasks", "cancel", second)
    assert refused.exit_code == 1 and "only queued or retrying" in refused.output


def test_bulk_retry_asks_first(runner: CliRunner, client: TestClient, migrated: Engine) -> None:
    ids = _delivered(runner, client, 3)
    for run_id in ids:
        _set_status(migrated, run_id, RunStatus.failed)
    declined = _invoke(runner, "tasks", "retry", "--status", "failed", input="n\n")
    assert declined.exit_code == 1 and "Retry 3 failed run(s)?" in declined.output
    accepted = _invoke(runner, "tasks", "retry", "--status", "failed", "--channel", "log", "--yes")
    assert accepted.exit_code == 0 and "3 run(s) queued again" in accepted.output
    nothing = _invoke(runner, "tasks", "retry", "--status", "failed", "--yes")
    assert "nothing to retry" in nothing.output
    assert _invoke(runner, "tasks", "retry").exit_code == 1


def test_prune_and_stats(runner: CliRunner, client: TestClient, migrated: Engine) -> None:
    _delivered(runner, client, 2)
    stats = json.loads(_invoke(runner, "tasks", "stats", "--json").output)
    assert stats["by_status"]["succeeded"] == 2 and stats["oldest_queued_at"] is None
    assert "runs by channel" in _invoke(runner, "tasks", "stats").output
    kept = _invoke(runner, "tasks", "prune", "--older-than", "30d")
    assert kept.exit_code == 0 and "nothing older than 30d" in kept.output
    dry = _invoke(runner, "tasks", "prune", "--older-than", "0s", "--dry-run")
    assert dry.exit_code == 0 and "would prune 2 run(s), 2 notification(s)" in dry.output
    refused = _invoke(runner, "tasks", "prune", "--older-than", "0s", input="n\n")
    assert refused.exit_code == 1 and "Delete 2 run(s), 2 notification(s)" in refused.output
    assert len(json.loads(_invoke(runner, "tasks", "list", "--json").output)) == 2
    pruned = _invoke(runner, "tasks", "prune", "--older-than", "0s", input="y\n")
    assert "pruned 2 run(s), 2 notification(s)" in pruned.output
    assert json.loads(_invoke(runner, "tasks", "list", "--json").output) == []
    bad = _invoke(runner, "tasks", "prune", "--older-than", "soon")
    assert bad.exit_code == 1 and "--older-than" in bad.output


@pytest.mark.usefixtures("settings")
def test_db_upgrade(runner: CliRunner) -> None:
    result = _invoke(runner, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert re.search(r"revision \d{4}", result.output), result.output


def test_bad_config_file_is_one_line(runner: CliRunner, tmp_path: Any) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 'not a number'\n")
    result = _invoke(runner, "--config", str(config), "tasks", "list")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "invalid configuration: port:" in result.output


def test_retrying_runs_show_their_next_attempt(
    runner: CliRunner, client: TestClient, migrated: Engine
) -> None:
    [run_id] = _delivered(runner, client, 1)
    with write_connection(migrated) as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status="retrying",
                next_attempt_at=utcnow() + timedelta(minutes=5),
                last_error="TransientDeliveryError: 451 try later",
            )
        )
    listed = runner.invoke(app, ["tasks", "list"], env={"COLUMNS": "160"})
    assert "next in 4m" in listed.output and "TransientDeliveryError" in listed.output
    shown = _invoke(runner, "tasks", "show", run_id)
    assert "next attempt" in shown.output and "in 4m" in shown.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tasks", "list", "--since", "9999999d"], "--since"),
        (["tasks", "prune", "--older-than", "1e400d"], "--older-than"),
        (["--db", "mysql://x/y", "tasks", "list"], "invalid database URL"),
        (["--db", "/proc/nope/x.db", "tasks", "list"], "no notifyd database"),
        (["tasks", "retry", "--status", "running"], "--status failed|cancelled"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    runner: CliRunner, migrated: Engine, args: list[str], expected: str
) -> None:
    result = _invoke(runner, *args)
    assert result.exit_code != 0
    assert expected in result.output and "Traceback" not in result.output


def test_prune_older_than_the_calendar_prunes_nothing(runner: CliRunner, migrated: Engine) -> None:
    result = _invoke(runner, "tasks", "prune", "--older-than", "99999999d")
    assert result.exit_code == 0 and "nothing older than 99999999d" in result.output
