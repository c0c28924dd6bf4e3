"""Named destinations: configured in TOML, resolved at delivery, their secrets never stored or shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError
from standardwebhooks import Webhook

from notifyd.channels.base import overlay
from notifyd.channels.registry import build_channels
from notifyd.config import DestinationSettings, Settings, SmtpSettings, load_settings
from notifyd.errors import ConfigError
from notifyd.notifications.destinations import Destinations, recipient_key
from notifyd.runtime import build_runtime
from notifyd.tracking.errors import PermanentError
from tests.channels.conftest import Serve
from tests.channels.helpers import submit, wait_run
from tests.channels.peers import Mailbox, Receiver, SmtpServer, password_checker, server_tls_context

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PASSWORD = "smtp-pa55word-xyz"


def hooks(receiver: Receiver, path: str = "/ops-hook") -> dict[str, Any]:
    return {
        "channel": "webhook",
        "to": f"{receiver.url}{path}",
        "webhook": {"secret": SECRET, "allow_cidrs": ["127.0.0.1/32"]},
    }


def test_webhook_destination_signs_with_its_secret_and_stores_only_its_name(
    serve: Serve, receiver: Receiver
) -> None:
    # The server-wide webhook settings have no secret and no allow-list: the destination's apply.
    client = serve(destinations={"deploys": hooks(receiver)})
    accepted = submit(client, destination="deploys", subject="deploy", message="v2 is out")
    assert [(t["channel"], t["to"]) for t in accepted["tasks"]] == [("webhook", "deploys")]
    run = wait_run(client, accepted["tasks"][0]["id"])

    assert run["status"] == "succeeded", run["last_error"]
    [request] = receiver.on("/ops-hook")
    Webhook(SECRET).verify(request.body, request.headers)
    assert run["recipient"] == "deploys"
    assert run["args"] == {
        "notification_id": accepted["id"],
        "channel": "webhook",
        "recipient": "deploys",
        "destination": "deploys",
        "recipient_key": recipient_key(f"{receiver.url}/ops-hook"),
    }
    note = client.get(f"/v1/notifications/{accepted['id']}").json()
    assert (note["destination"], note["channel"], note["to"]) == ("deploys", "webhook", ["deploys"])


def test_email_destination_with_its_own_server_login_and_two_recipients(
    serve: Serve, tmp_path: Path, ca: trustme.CA, ca_file: Path
) -> None:
    mailbox = Mailbox()
    server = SmtpServer(
        mailbox,
        tls_context=server_tls_context(ca.issue_cert("127.0.0.1", "localhost")),
        require_starttls=True,
        auth_required=True,
        authenticator=password_checker(mailbox, "alerts", PASSWORD),
    )
    ops = {
        "channel": "email",
        "to": ["alice@example.org", "Bob <bob@example.org>"],
        "smtp": {
            "port": server.port,
            "security": "starttls",
            "username": "alerts",
            "password": PASSWORD,
            "ca_file": str(ca_file),
        },
    }
    smtp = {"host": "127.0.0.1", "from_address": "alerts@example.org", "timeout": 5}
    client = serve(smtp=smtp, destinations={"ops": ops})
    with server:
        accepted = submit(client, destination="ops", subject="disk", message="91%")
        runs = [wait_run(client, task["id"]) for task in accepted["tasks"]]

    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]
    assert [run["recipient"] for run in runs] == ["ops/1", "ops/2"]
    assert sorted(rcpt for _, (rcpt,) in mailbox.envelopes) == [
        "alice@example.org",
        "bob@example.org",
    ]
    assert all(m["From"] == "alerts@example.org" for m in mailbox.messages)
    assert mailbox.logins == ["PLAIN:alerts", "PLAIN:alerts"]

    shown = " ".join(
        [client.get("/v1/tasks").text, client.get(f"/v1/notifications/{accepted['id']}").text]
        + [client.get(f"/v1/tasks/{run['id']}").text for run in runs]
    )
    stored = b"".join(path.read_bytes() for path in (tmp_path / "home").glob("notifyd.db*"))
    for secret in (PASSWORD, "alice@example.org", "bob@example.org"):
        assert secret not in shown
        assert secret.encode() not in stored


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"destination": "nope", "message": "m"}, "no destination named 'nope' (deploys)"),
        ({"destination": "deploys", "to": "x", "message": "m"}, "either to"),
        ({"message": "m"}, "either to"),
        (
            {"destination": "deploys", "channel": "email", "message": "m"},
            "delivers through 'webhook'",
        ),
    ],
)
def test_bad_destination_requests_are_422(
    serve: Serve, receiver: Receiver, body: dict[str, Any], detail: str
) -> None:
    client = serve(destinations={"deploys": hooks(receiver)})
    response = client.post("/v1/notifications", json=body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_naming_the_destinations_own_channel_is_fine(serve: Serve, receiver: Receiver) -> None:
    client = serve(destinations={"deploys": hooks(receiver)})
    submit(client, destination="deploys", channel="webhook", message="m")


def test_destinations_load_from_toml_and_override_server_settings(tmp_path: Path) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(
        """
[smtp]
host = "mail.example.org"
port = 587
security = "starttls"
from_address = "notifyd@example.org"

[destinations.ops]
channel = "email"
to = ["ops@example.org"]

[destinations.ops.smtp]
username = "ops-sender"
password = "pw-from-toml"

[destinations.chat]
channel = "apprise"
to = "json://chat.example.org/hook"
"""
    )
    settings = load_settings(config)
    ops = settings.destinations["ops"]
    smtp = overlay(settings.smtp, ops.smtp)
    assert (smtp.host, smtp.port, smtp.security) == ("mail.example.org", 587, "starttls")
    assert smtp.username == "ops-sender"
    assert smtp.password is not None and smtp.password.get_secret_value() == "pw-from-toml"
    assert settings.destinations["chat"].to == ["json://chat.example.org/hook"]
    assert "pw-from-toml" not in repr(settings)


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({"channel": "pigeon", "to": "x"}, "unknown channel 'pigeon'"),
        (
            {"channel": "email", "to": ["ok@example.org", "not-an-address"]},
            "destinations.bad.to[1]",
        ),
        ({"channel": "apprise", "to": "bogus://tok3n"}, "destinations.bad.to[0]"),
    ],
)
def test_bad_destinations_stop_the_server_from_starting(
    tmp_path: Path, destination: dict[str, Any], message: str
) -> None:
    settings = Settings(home=tmp_path, destinations={"bad": destination})
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        build_runtime(settings)
    assert "tok3n" not in str(caught.value)


def test_bad_destination_names_are_refused(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        destinations={"has space": DestinationSettings(channel="log", to=["x"])},
    )
    with pytest.raises(ConfigError, match="has space"):
        Destinations.from_settings(settings, build_channels(settings))


def test_runs_resolve_against_the_configuration_at_delivery(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        destinations={
            "team": DestinationSettings(channel="email", to=["a@example.org", "b@example.org"])
        },
    )
    destinations = Destinations.from_settings(settings, build_channels(settings))
    config, recipient = destinations.resolve("team", recipient_key("b@example.org"), "email")
    assert recipient == "b@example.org"
    assert config.smtp is None
    with pytest.raises(PermanentError, match="removed"):
        destinations.resolve("team", recipient_key("gone@example.org"), "email")
    with pytest.raises(PermanentError, match="now uses channel"):
        destinations.resolve("team", recipient_key("a@example.org"), "webhook")
    with pytest.raises(PermanentError, match="no longer configured"):
        destinations.resolve("other", "x", "email")


def test_overlay_replaces_only_fields_set() -> None:
    base = SmtpSettings(host="mail.example.org", port=587, username="base")
    override = SmtpSettings.model_validate({"username": "dest"})
    merged = overlay(base, override)
    assert (merged.host, merged.port, merged.username) == ("mail.example.org", 587, "dest")
    assert overlay(base, None) is base


def test_configuration_errors_do_not_echo_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            home=tmp_path,
            destinations={
                "x": {"channel": "email", "to": "a@b.org", "smtp": {"password": ["pw-in-list"]}},
                "y": {"channel": "webhook", "to": "x", "webhook": {"secret": "whsec_shh!!"}},
            },
        )
    assert "pw-in-list" not in str(caught.value)
    assert "shh" not in str(caught.value)
