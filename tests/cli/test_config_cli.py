"""A typo in the config file is an error naming the key and its section, with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("concurency = 3\n", "unknown key 'concurency' in the top level"),
        ("[smtp]\nhots = 'mail'\n", "unknown key 'hots' in [smtp]"),
        ("[webhok]\ntimeout = 3\n", "unknown section [webhok]"),
        ("[retry]\nmax_attempt = 3\n", "unknown key 'max_attempt' in [retry]"),
        ("[channels.email]\nconcurency = 2\n", "unknown key 'concurency' in [channels.email]"),
        ("[channels.email.retry]\ncap_ = 2\n", "in [channels.email.retry]"),
        (
            "[destinations.ops]\nchannel = 'log'\nto = 'a'\ndescripton = 'x'\n",
            "unknown key 'descripton' in [destinations.ops]",
        ),
        (
            "[destinations.ops]\nchannel = 'log'\nto = 'a'\n[destinations.ops.smtp]\nprot = 1\n",
            "unknown key 'prot' in [destinations.ops.smtp]",
        ),
    ],
)
def test_unknown_keys_are_one_line_errors(tmp_path: Path, toml: str, expected: str) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(toml)
    result = CliRunner().invoke(app, ["--config", str(config), "destinations", "list"])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_close_key_is_suggested(tmp_path: Path) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text("[smtp]\nhots = 'mail'\n")
    result = CliRunner().invoke(app, ["--config", str(config), "destinations", "list"])
    assert "did you mean 'host'?" in result.output


def test_unknown_environment_variables_stay_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFYD_SOMETHING_ELSE", "1")
    config = tmp_path / "notifyd.toml"
    config.write_text("concurrency = 3\n")
    result = CliRunner().invoke(app, ["--config", str(config), "destinations", "list"])
    assert result.exit_code == 0, result.output


def test_value_error_prefix_is_not_shown(tmp_path: Path) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text("[webhook]\nsecret = 'nope'\n")
    result = CliRunner().invoke(app, ["--config", str(config), "destinations", "list"])
    assert result.exit_code == 2
    assert "whsec_" in result.output and "Value error" not in result.output
