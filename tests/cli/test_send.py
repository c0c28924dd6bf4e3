"""``notifyd send`` against a live server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from tests.support import free_port


def test_send_prints_ids(runner: CliRunner, live_server: str) -> None:
    result = runner.invoke(
        app, ["send", "--to", "alice@example.com", "--subject", "Hi", "--message", "Hello"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "ntf_" in result.output and "run_" in result.output and "alice@example.com" in result.output
    )


def test_send_wait_follows_to_the_end(runner: CliRunner, live_server: str) -> None:
    result = runner.invoke(
        app, ["send", "--to", "a", "--to", "b", "-m", "Hello", "--wait", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["id"].startswith("ntf_")
    assert [t["status"] for t in body["tasks"]] == ["succeeded", "succeeded"]


def test_send_idempotency_key_replays(runner: CliRunner, live_server: str) -> None:
    args = ["send", "--to", "a", "-m", "once", "--idempotency-key", "order-42", "--json"]
    first = json.loads(runner.invoke(app, args).output)
    second = runner.invoke(app, args[:-1])
    assert "replayed" in second.output and first["id"] in second.output


def test_send_reports_api_errors_in_one_line(runner: CliRunner, live_server: str) -> None:
    result = runner.invoke(app, ["send", "--channel", "pigeon", "--to", "a", "-m", "x"])
    assert result.exit_code == 1
    assert "unknown channel 'pigeon'" in result.output and "Traceback" not in result.output
    bad = runner.invoke(app, ["send", "--to", "a", "-m", "x", "--data", "[1]"])
    assert bad.exit_code == 1 and "--data" in bad.output


def test_unreachable_server_is_one_line(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["send", "--server", url, "--to", "a", "-m", "x"])
    assert result.exit_code == 1
    assert f"cannot reach the notifyd server at {url}" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_server_url_and_non_ascii_headers_are_one_line(runner: CliRunner) -> None:
    bad_url = runner.invoke(app, ["send", "--server", "http://[::1", "--to", "a", "-m", "x"])
    assert bad_url.exit_code == 1 and "invalid server URL" in bad_url.output
    key = runner.invoke(
        app,
        [
            "send",
            "--server",
            "http://127.0.0.1:9",
            "--to",
            "a",
            "-m",
            "x",
            "--idempotency-key",
            "clé",
        ],
    )
    assert key.exit_code == 1 and "ASCII" in key.output


def test_a_scheduled_send_says_when_in_local_time(runner: CliRunner, live_server: str) -> None:
    result = runner.invoke(app, ["send", "--to", "a", "-m", "later", "--in", "2h"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # the line may wrap at the terminal's width
    shown = text.split("scheduled for ", 1)[1].split()[:3]
    # As the tables show times: local, to the second, naming the zone (no raw ISO text).
    date, time, zone = shown
    assert len(date) == 10 and len(time) == 8 and zone.isalpha(), shown
