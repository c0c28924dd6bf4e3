"""``serve``/``worker --log-format json``: one JSON object per line, delivery fields included."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from cli.logs import JsonLines
from tests.support import ServerProcess, wait_for


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("notifyd.delivery", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_time_level_logger_message_and_the_fields() -> None:
    line = JsonLines().format(_record("delivery of run run_1 failed", run_id="run_1", attempt=2))
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "notifyd.delivery"
    assert entry["message"] == "delivery of run run_1 failed"
    assert entry["time"].endswith("+00:00")
    assert (entry["run_id"], entry["attempt"]) == ("run_1", 2)
    assert "msg" not in entry and "args" not in entry and "levelno" not in entry


def test_a_multi_line_message_and_a_traceback_stay_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = _record("first\nsecond")
        record.exc_info = sys.exc_info()
    line = JsonLines().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "first\nsecond" and "ValueError: boom" in entry["exception"]


@pytest.mark.system
def test_serve_logs_json_lines_with_delivery_fields(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", args=("--log-format", "json")).start()
    try:
        accepted = httpx.post(
            server.url + "/v1/notifications",
            json={"channel": "webhook", "to": "http://127.0.0.1:9/hook", "message": "m"},
        ).json()
        run_id = accepted["tasks"][0]["id"]

        def delivery_line() -> dict[str, object] | None:
            for line in server.log().splitlines():
                entry: dict[str, object] = json.loads(line)
                if entry.get("run_id") == run_id:
                    return entry
            return None

        entry = wait_for(delivery_line, what="the run's log line")
    finally:
        server.terminate()
    assert entry["level"] == "ERROR" and entry["logger"] == "notifyd.delivery"
    assert entry["channel"] == "webhook" and entry["outcome"] == "permanent_error"
    lines = server.log().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)  # every line is JSON
