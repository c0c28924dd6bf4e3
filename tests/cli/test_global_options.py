"""The root options reach every command: `notifyd --db URL serve` serves URL (issue 13, item 4)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from notifyd.config import Settings


class _Stop(Exception):
    """Raised by the fakes once they have seen the settings a command built."""


def _capture(monkeypatch: pytest.MonkeyPatch, target: str) -> list[Settings]:
    seen: list[Settings] = []

    def fake(settings: Settings, *args: Any, **kwargs: Any) -> Any:
        seen.append(settings)
        raise _Stop

    module, _, name = target.rpartition(".")
    monkeypatch.setattr(f"{module}.{name}", fake)
    return seen


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["serve"], "notifyd.runtime.build_runtime"),
        (["worker"], "notifyd.worker.run_worker"),
    ],
)
def test_root_db_option_reaches_serve_and_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], target: str
) -> None:
    monkeypatch.setenv("NOTIFYD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NOTIFYD_DATABASE_URL", raising=False)
    seen = _capture(monkeypatch, target)
    other = tmp_path / "other.db"
    CliRunner().invoke(app, ["--db", str(other), *command])
    assert seen, "the command did not get as far as building its runtime"
    assert seen[0].db_url == f"sqlite:///{other.resolve()}"


def test_subcommand_db_option_wins_over_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFYD_HOME", str(tmp_path / "home"))
    seen = _capture(monkeypatch, "notifyd.worker.run_worker")
    mine = tmp_path / "mine.db"
    CliRunner().invoke(app, ["--db", str(tmp_path / "root.db"), "worker", "--db", str(mine)])
    assert seen[0].db_url == f"sqlite:///{mine.resolve()}"


def test_worker_refuses_an_unmigrated_store_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 13: it ran, logging a traceback every second."""
    monkeypatch.setenv("NOTIFYD_HOME", str(tmp_path / "home"))
    missing = CliRunner().invoke(app, ["--db", str(tmp_path / "typo.db"), "worker"])
    assert missing.exit_code == 3, missing.output
    assert "no notifyd database" in missing.output and not (tmp_path / "typo.db").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = CliRunner().invoke(app, ["--db", str(empty), "worker"])
    assert result.exit_code == 3, result.output
    assert "has no notifyd schema: run `notifyd db upgrade` first" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
