"""The log channel: one JSON line per delivery, and a rotated file is followed, not lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifyd.channels import log as log_channel
from notifyd.channels.base import OutgoingMessage
from notifyd.channels.log import LogChannel


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(
        delivery_id=f"run_{n}",
        notification_id=f"ntf_{n}",
        subject="s",
        message="naïve </script> line",
        data={"n": n},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lines_are_json_and_a_rotated_file_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("notifyd.channels.log.time.monotonic", lambda: now[0])
    path = tmp_path / "logs" / "deliveries.log"
    channel = LogChannel(path)

    async def scenario() -> None:
        await channel.send(_message(1), "ops")
        path.rename(tmp_path / "deliveries.log.1")  # logrotate moves the file away
        await channel.send(_message(2), "ops")  # within the check interval: the moved file
        now[0] += log_channel.REOPEN_CHECK_SECONDS
        await channel.send(_message(3), "ops")  # looked again: a new file
        await channel.aclose()

    asyncio.run(scenario())
    rotated = _lines(tmp_path / "deliveries.log.1")
    assert [line["delivery_id"] for line in rotated] == ["run_1", "run_2"]
    assert rotated[0]["message"] == "naïve </script> line" and rotated[0]["to"] == "ops"
    assert [line["delivery_id"] for line in _lines(path)] == ["run_3"]
