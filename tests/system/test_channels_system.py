"""The real server with a TOML config: destinations over real channels, and no secret in its log."""

from __future__ import annotations

import json
from pathlib import Path

from standardwebhooks import Webhook

from tests.channels.peers import Mailbox, Receiver, SmtpServer
from tests.support import ServerProcess

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SMTP_PASSWORD = "system-smtp-pw"


def test_destinations_from_toml_deliver_and_stay_secret(tmp_path: Path) -> None:
    mailbox = Mailbox()
    with Receiver() as receiver, SmtpServer(mailbox) as smtp:
        config = tmp_path / "notifyd.toml"
        config.write_text(
            f"""
[smtp]
host = "127.0.0.1"
port = {smtp.port}
from_address = "notifyd@example.org"

[destinations.deploys]
channel = "webhook"
to = "{receiver.url}/hooks/p4th-t0ken"

[destinations.deploys.webhook]
secret = "{SECRET}"
allow_cidrs = ["127.0.0.1/32"]

[destinations.ops]
channel = "email"
to = ["oncall@example.org"]

[destinations.ops.smtp]
password = "{SMTP_PASSWORD}"
security = "none"
"""
        )
        home = tmp_path / "home"
        with ServerProcess(home, env={"NOTIFYD_CONFIG": str(config)}) as server:
            listed = json.loads(server.cli("destinations", "list", "--json").stdout)
            assert [(d["name"], d["channel"]) for d in listed] == [
                ("deploys", "webhook"),
                ("ops", "email"),
            ]
            sent = server.cli("send", "-d", "deploys", "-m", "v2 is out", "--wait", "--json")
            [task] = json.loads(sent.stdout)["tasks"]
            assert (task["to"], task["status"]) == ("deploys", "succeeded")
            shown = server.cli("tasks", "show", task["id"]).stdout
            api = server.cli("send", "-d", "ops", "-s", "disk", "-m", "91%", "--wait").stdout
            assert "succeeded" in api
            log = server.log()

        [request] = receiver.on("/hooks/p4th-t0ken")
        Webhook(SECRET).verify(request.body, request.headers)
        [mail] = mailbox.messages
        assert mail["To"] == "oncall@example.org"
        for text in (shown, api, log, json.dumps(listed)):
            for secret in (SECRET, SMTP_PASSWORD, "p4th-t0ken", "oncall@example.org"):
                assert secret not in text
