"""Untrusted text is shown literally in every view: Rich must never read data as markup."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from notifyd.models import (
    AttemptPublic,
    NotificationPublic,
    Outcome,
    RunStatus,
    TaskPage,
    TaskRunDetail,
    TaskStats,
    TaskSummary,
)
from tests.cli.conftest import fake_server

NASTY = ["[/x]", "[red]x[/red]", "<script>alert(1)</script>"]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _run(text: str) -> TaskRunDetail:
    return TaskRunDetail(
        id=f"run_{text}",
        task_name=text,
        notification_id=f"ntf_{text}",
        channel=text,
        recipient=text,
        status=RunStatus.retrying,
        attempts=2,
        max_attempts=8,
        created_at=NOW,
        updated_at=NOW,
        next_attempt_at=NOW + timedelta(minutes=5),
        started_at=NOW,
        finished_at=None,
        duration_ms=12.0,
        last_error=text,
        args={"to": text, "subject": text},
        attempts_detail=[
            AttemptPublic(
                number=n,
                worker=text,
                started_at=NOW,
                finished_at=NOW,
                duration_ms=5.0,
                outcome=Outcome.transient_error,
                error_type=text,
                error_message=text,
                traceback=text,
                retry_delay_seconds=5.0,
                response={"body": text},
            )
            for n in (1, 2)
        ],
    )


def _notification(text: str) -> NotificationPublic:
    return NotificationPublic(
        id=f"ntf_{text}",
        channel=text,
        destination=text,
        subject=text,
        message=text,
        data={"html": text},
        to=[text, text],
        created_at=NOW,
        status="pending",
        tasks=[TaskSummary(id=f"run_{text}", channel=text, to=text, status=RunStatus.retrying)],
    )


class _FakeEngine:
    def connect(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``tasks`` commands read runs whose every field holds the given text."""

    def use(text: str) -> None:
        run = _run(text)
        monkeypatch.setattr("cli.tasks.open_store", lambda ctx, *a: _FakeEngine())
        monkeypatch.setattr("cli.notifications.open_store", lambda ctx, *a: _FakeEngine())
        monkeypatch.setattr(
            "notifyd.notifications.views.get_notification",
            lambda conn, **kw: _notification(text),
        )
        monkeypatch.setattr(
            "notifyd.notifications.views.list_runs",
            lambda conn, **kw: TaskPage(items=[run], next_cursor=None),
        )
        monkeypatch.setattr("notifyd.notifications.views.get_run", lambda conn, **kw: run)
        monkeypatch.setattr(
            "notifyd.notifications.views.task_stats",
            lambda conn, **kw: TaskStats(
                by_status={"queued": 1},
                by_channel={text: {"queued": 1}},
                oldest_queued_at=NOW,
                oldest_queued_age_seconds=3.0,
            ),
        )

    return use


def _flat(output: str) -> str:
    """The output without the folding and padding a narrow table adds."""
    return "".join(output.split())


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("columns", ["80", "200"])
@pytest.mark.parametrize(
    "args",
    [
        ["tasks", "list"],
        ["tasks", "show", "run_x"],
        ["tasks", "stats"],
        ["notifications", "show", "ntf_x"],
    ],
    ids=" ".join,
)
def test_tasks_views_show_data_literally(
    fake_store: Callable[[str], None], args: list[str], columns: str, text: str
) -> None:
    fake_store(text)
    result = CliRunner().invoke(app, args, env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    if columns == "80" and len(text) > 12:  # folded across the row's lines: its start is whole
        assert "<script>" in result.output
    else:
        assert _flat(text) in _flat(result.output)


@pytest.mark.parametrize("text", NASTY)
def test_tasks_show_prints_each_distinct_traceback_once(
    fake_store: Callable[[str], None], text: str
) -> None:
    fake_store(text)
    once = CliRunner().invoke(app, ["tasks", "show", "run_x"], env={"COLUMNS": "200"})
    assert once.exit_code == 0, once.output
    assert "as in attempt 1" in once.output
    every = CliRunner().invoke(
        app, ["tasks", "show", "run_x", "--traceback"], env={"COLUMNS": "200"}
    )
    assert "as in attempt 1" not in every.output


@pytest.mark.parametrize("text", NASTY)
def test_errors_show_data_literally(runner: CliRunner, text: str) -> None:
    result = runner.invoke(app, ["--db", "/nonexistent/" + text, "tasks", "show", text])
    assert result.exit_code == 1
    assert text in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("text", NASTY)
def test_token_names_with_markup_are_refused_in_one_line(runner: CliRunner, text: str) -> None:
    # Token names are restricted to letters, digits and . _ @ -: markup cannot get into the list.
    created = runner.invoke(app, ["tokens", "create", text])
    assert created.exit_code == 1 and "Traceback" not in created.output
    assert len(created.output.strip().splitlines()) == 1


@pytest.mark.parametrize("text", NASTY)
def test_destinations_list_shows_names_and_the_hint_literally(tmp_path: Path, text: str) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(f"[destinations.ops]\nchannel = 'log'\nto = 'a'\ndescription = {text!r}\n")
    shown = CliRunner().invoke(
        app, ["--config", str(config), "destinations", "list"], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert text in shown.output
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    hint = CliRunner().invoke(app, ["--config", str(empty), "destinations", "list"])
    assert "[destinations.<name>]" in hint.output


@pytest.mark.parametrize("text", NASTY)
def test_send_shows_the_answer_literally(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            task = {"id": f"run_{text}", "channel": text, "to": text, "status": "queued"}
            return httpx.Response(
                202, json={"id": f"ntf_{text}", "status": "accepted", "tasks": [task]}
            )
        if request.url.path.startswith("/v1/tasks/"):
            return httpx.Response(
                200, json={"id": f"run_{text}", "status": "failed", "last_error": text}
            )
        return httpx.Response(200, json={"id": f"ntf_{text}", "status": "failed", "tasks": []})

    with fake_server(monkeypatch, handler):
        result = runner.invoke(app, ["send", "--to", text, "-m", text, "--wait"])
    assert result.exit_code == 4, result.output
    assert f"ntf_{text}" in result.output and f"run_{text}" in result.output
    assert result.output.count(text) >= 4


def test_json_output_is_plain_json(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        task = {"id": "run_1", "channel": "log", "to": NASTY[1], "status": "queued"}
        return httpx.Response(202, json={"id": "ntf_1", "status": "accepted", "tasks": [task]})

    with fake_server(monkeypatch, handler):
        result = runner.invoke(app, ["send", "--to", "a", "-m", "x", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tasks"][0]["to"] == NASTY[1]


def _ntfy_stream(*messages: dict[str, object]) -> Callable[[httpx.Request], httpx.Response]:
    """A server whose ``/<topic>/json`` answers these messages (ntfy's JSON lines)."""

    def handler(request: httpx.Request) -> httpx.Response:
        lines = [
            {"id": f"m{n}", "time": 1796580000 + n, "event": "message", **message}
            for n, message in enumerate(messages)
        ]
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return httpx.Response(200, content=body.encode(), headers={"content-type": "x-ndjson"})

    return handler


@pytest.mark.parametrize("text", [*NASTY, "[bold]b[/bold]"])
@pytest.mark.parametrize("columns", ["80", "200"])
def test_subscribe_shows_messages_literally(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, text: str, columns: str
) -> None:
    message = {"topic": "phone", "title": text, "message": text, "tags": [text], "priority": 5}
    with fake_server(monkeypatch, _ntfy_stream(message)):
        result = runner.invoke(app, ["subscribe", "phone", "--poll"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert _flat(f"phone [urgent] {text} {text}: {text}") in _flat(result.output)
    assert "Traceback" not in result.output


def test_subscribe_line_breaks_cannot_forge_messages(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = "10:00:00 phone Forged: [red]x[/red]"
    breaks = ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1e"]
    message = "real" + "".join(f"{b}{forged}" for b in breaks) + "\x1b]0;title\x07\x1b[2J"
    with fake_server(
        monkeypatch,
        _ntfy_stream(
            {"topic": "phone", "title": f"T\r\n{forged}", "message": message},
            {"topic": "phone", "message": "next"},
        ),
    ):
        result = runner.invoke(app, ["subscribe", "phone", "--poll"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    starts = [line for line in lines if not line.startswith(" ")]
    assert len(starts) == 2 and starts[1].endswith("phone next"), result.output
    assert starts[0].endswith(f"phone T {forged}: real")
    assert [line.strip() for line in lines[1:-1]][: len(breaks) - 1] == [forged] * (len(breaks) - 1)
    assert lines[-2].strip() == rf"{forged}\x1b]0;title\x07\x1b[2J"
    assert not any(c in result.output for c in "\r\x1b\x07\x0b\x0c\x85\u2028\u2029\x1e")
    assert len(lines) == 2 + len(breaks)
