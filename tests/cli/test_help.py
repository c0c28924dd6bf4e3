"""Every command answers --help."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):  # a group
        for name, sub in command.commands.items():
            paths += _paths(sub, (*prefix, name))
    return paths


COMMANDS = _paths(typer.main.get_command(app))


def test_the_tree_has_the_commands_users_need() -> None:
    names = {" ".join(path) for path in COMMANDS}
    expected = {
        "serve",
        "send",
        "worker",
        "tasks list",
        "tasks show",
        "tasks retry",
        "tasks cancel",
        "tasks prune",
        "tasks stats",
        "db upgrade",
    }
    assert expected <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "notifyd")
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("notifyd ")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["tasks", "list", "--status", "bogus"], "--status"),
        (["tasks", "retry", "--status", "bogus"], "--status"),
        (["tokens", "create", "x", "--scope", "bogus"], "--scope"),
        (["serve", "--log-format", "bogus"], "--log-format"),
    ],
)
def test_a_bad_choice_is_one_plain_line(runner: CliRunner, argv: list[str], option: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': 'bogus' is not one of" in result.output
    assert "Value error" not in result.output
