"""``notifyd tokens`` and the CLI's side of authentication: send with a token, serve's refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from notifyd.config import Settings
from tests.support import free_port


def create(runner: CliRunner, name: str, *options: str) -> str:
    result = runner.invoke(app, ["tokens", "create", name, *options])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def all_files(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def test_create_prints_the_token_once(runner: CliRunner, settings: Settings) -> None:
    result = runner.invoke(app, ["tokens", "create", "ci", "--scope", "send"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("ntd_") and "\n" not in token
    assert "cannot be shown again" in result.stderr
    listed = runner.invoke(app, ["tokens", "list"])
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout and "send" in listed.stdout
    assert token not in listed.output and token[4:12] not in listed.output
    assert token.encode() not in all_files(settings.home)


def test_create_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["tokens", "create", "robot", "--scope", "admin", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["name"] == "robot" and body["scope"] == "admin"
    assert body["token"].startswith("ntd_") and body["last_used_at"] is None


def test_list_json_never_has_the_token(runner: CliRunner) -> None:
    token = create(runner, "reader", "--scope", "read")
    result = runner.invoke(app, ["tokens", "list", "--json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.stdout)
    assert set(listed) == {
        "name",
        "scope",
        "created_at",
        "last_used_at",
        "revoked_at",
        "destination",
    }
    assert token not in result.output


def test_revoke(runner: CliRunner) -> None:
    create(runner, "old")
    result = runner.invoke(app, ["tokens", "revoke", "old"])
    assert result.exit_code == 0, result.output
    assert "revoked" in result.stdout
    assert "old" not in runner.invoke(app, ["tokens", "list", "--json"]).stdout
    everything = json.loads(runner.invoke(app, ["tokens", "list", "--all", "--json"]).stdout)
    assert everything[0]["name"] == "old" and everything[0]["revoked_at"]
    unknown = runner.invoke(app, ["tokens", "revoke", "ghost"])
    assert unknown.exit_code == 1 and "no token named 'ghost'" in unknown.output


def test_bad_input_is_one_line(runner: CliRunner) -> None:
    create(runner, "ci")
    again = runner.invoke(app, ["tokens", "create", "ci"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert len(again.output.strip().splitlines()) == 1
    scope = runner.invoke(app, ["tokens", "create", "x", "--scope", "root"])
    assert scope.exit_code == 2
    name = runner.invoke(app, ["tokens", "create", "has space"])
    assert name.exit_code == 1 and "name" in name.output


def test_list_before_any_database(runner: CliRunner) -> None:
    result = runner.invoke(app, ["tokens", "list"])
    assert result.exit_code == 1 and "notifyd db upgrade" in result.output


def test_send_uses_the_configured_token(
    runner: CliRunner, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = create(runner, "sender", "--scope", "send")
    refused = runner.invoke(app, ["send", "--to", "ops", "-m", "hi"])
    assert refused.exit_code == 1 and "401" in refused.output
    monkeypatch.setenv("NOTIFYD_TOKEN", "ntd_wrong" + "x" * 40)
    wrong = runner.invoke(app, ["send", "--to", "ops", "-m", "hi"])
    assert wrong.exit_code == 1 and "401" in wrong.output and "ntd_wrong" not in wrong.output
    monkeypatch.setenv("NOTIFYD_TOKEN", token)
    # A send token may follow its own notification's runs.
    result = runner.invoke(app, ["send", "--to", "ops", "-m", "hi", "--wait", "--json"])
    assert result.exit_code == 0, result.output
    assert [t["status"] for t in json.loads(result.stdout)["tasks"]] == ["succeeded"]
    assert token not in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_serve_refuses_an_open_api_off_loopback(runner: CliRunner, host: str) -> None:
    result = runner.invoke(app, ["serve", "--host", host, "--port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert "refusing to serve" in result.output
    assert "notifyd tokens create" in result.output and "--insecure-no-auth" in result.output


def test_binding_to_a_destination_the_configuration_lacks_warns(runner: CliRunner) -> None:
    result = runner.invoke(app, ["tokens", "create", "gotify", "--destination", "nosuch"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("ntd_")
    assert "no destination 'nosuch' in this configuration" in result.stderr
