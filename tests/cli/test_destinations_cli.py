"""``notifyd destinations list`` and ``notifyd send`` to destinations and through real channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from cli.main import app
from notifyd.config import Settings
from tests.channels.peers import Mailbox, Receiver, SmtpServer
from tests.conftest import make_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONFIG = """
[smtp]
host = "127.0.0.1"
password = "global-smtp-pw"

[destinations.ops]
channel = "email"
to = ["oncall@example.org", "lead@example.org"]
description = "whoever is on call"

[destinations.ops.smtp]
username = "alerts"
password = "ops-smtp-pw"

[destinations.deploys]
channel = "webhook"
to = "https://hooks.example.org/T0/p4th-t0ken"

[destinations.deploys.webhook]
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer(Mailbox()) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, receiver: Receiver, smtp_server: SmtpServer) -> Settings:
    """The live server's settings: a webhook destination and an SMTP server, both on loopback."""
    return make_settings(
        tmp_path / "home",
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "timeout": 5},
        webhook={"allow_cidrs": ["127.0.0.1/32"]},
        destinations={
            "deploys": {
                "channel": "webhook",
                "to": f"{receiver.url}/hooks/s3cret-path",
                "webhook": {"secret": SECRET},
            }
        },
    )


def test_list_reads_the_config_and_shows_no_secrets(tmp_path: Path) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(CONFIG)
    runner = CliRunner()
    table = runner.invoke(app, ["--config", str(config), "destinations", "list"])
    assert table.exit_code == 0, table.output
    assert "deploys" in table.output and "whoever is on call" in table.output
    as_json = runner.invoke(app, ["--config", str(config), "destinations", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == [
        {"name": "deploys", "channel": "webhook", "recipients": 1, "description": None},
        {"name": "ops", "channel": "email", "recipients": 2, "description": "whoever is on call"},
    ]
    for output in (table.output, as_json.output):
        for secret in ("pw", "p4th-t0ken", "whsec_", "oncall@", "lead@"):
            assert secret not in output


def test_list_without_destinations(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["destinations", "list"])
    assert result.exit_code == 0, result.output
    assert "no destinations are configured" in result.output


def test_list_reports_a_bad_destination_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text('[destinations.x]\nchannel = "email"\nto = "not-an-address"\n')
    result = CliRunner().invoke(app, ["--config", str(config), "destinations", "list"])
    assert result.exit_code == 2
    assert "destinations.x.to[0]" in result.output
    assert "Traceback" not in result.output


def test_send_to_a_destination(runner: CliRunner, live_server: str, receiver: Receiver) -> None:
    result = runner.invoke(
        app, ["send", "--destination", "deploys", "-m", "deployed", "--wait", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [(t["to"], t["status"]) for t in body["tasks"]] == [("deploys", "succeeded")]
    [request] = receiver.on("/hooks/s3cret-path")
    Webhook(SECRET).verify(request.body, request.headers)

    shown = runner.invoke(app, ["tasks", "show", body["tasks"][0]["id"]])
    assert shown.exit_code == 0, shown.output
    assert "s3cret-path" not in shown.output and SECRET not in shown.output


def test_send_adhoc_webhook(runner: CliRunner, live_server: str, receiver: Receiver) -> None:
    url = f"{receiver.url}/adhoc/t0ken-in-path"
    result = runner.invoke(
        app, ["send", "--channel", "webhook", "--to", url, "-m", "hi", "--wait", "--json"]
    )
    assert result.exit_code == 0, result.output
    [task] = json.loads(result.stdout)["tasks"]
    assert task["status"] == "succeeded"
    assert task["to"] == f"{receiver.url}/********"
    assert len(receiver.on("/adhoc/t0ken-in-path")) == 1
    shown = runner.invoke(app, ["tasks", "show", task["id"], "--json"])
    assert "t0ken-in-path" not in shown.output


def test_send_adhoc_email(runner: CliRunner, live_server: str, smtp_server: SmtpServer) -> None:
    result = runner.invoke(
        app,
        [
            "send",
            "--channel",
            "email",
            "--to",
            "ops@example.org",
            "-s",
            "Hi",
            "-m",
            "Hello",
            "--wait",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    [mail] = smtp_server.mailbox.messages
    assert (mail["To"], mail["Subject"]) == ("ops@example.org", "Hi")


def test_send_needs_recipients_or_a_destination(runner: CliRunner) -> None:
    result = runner.invoke(app, ["send", "-m", "to whom?"])
    assert result.exit_code == 1
    assert "--destination" in result.output
