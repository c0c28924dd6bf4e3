"""The real server: it will not serve an open API to the network, and no secret leaks anywhere."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from pathlib import Path

import httpx

from tests.channels.peers import Mailbox, SmtpServer, password_checker
from tests.support import NOTIFYD, Receiver, ServerProcess, free_port, wait_for

FINISHED = {"succeeded", "failed", "cancelled"}


def serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"NOTIFYD_HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [NOTIFYD, "serve", "--port", str(free_port()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_a_non_loopback_bind_without_tokens(tmp_path: Path) -> None:
    result = serve(tmp_path / "home", "--host", "0.0.0.0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to serve on 0.0.0.0 without API tokens" in result.stderr
    assert "notifyd tokens create" in result.stderr and "--insecure-no-auth" in result.stderr


def test_serves_the_network_once_a_token_exists(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", args=("--host", "0.0.0.0"))
    server.home.mkdir(parents=True)
    token = server.cli("tokens", "create", "app", "--scope", "send").stdout.strip()
    with server:
        note = {"to": "ops", "message": "up"}
        assert httpx.post(server.url + "/v1/notifications", json=note).status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.post(server.url + "/v1/notifications", json=note, headers=headers)
        assert response.status_code == 202
    assert "API tokens required" in server.log()


def test_insecure_no_auth_is_explicit_and_loud(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home", args=("--host", "0.0.0.0", "--insecure-no-auth"))
    with server:
        note = {"to": "ops", "message": "open"}
        assert httpx.post(server.url + "/v1/notifications", json=note).status_code == 202
    assert "API OPEN TO THE NETWORK" in server.log()


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def test_no_secret_in_logs_database_or_output(tmp_path: Path) -> None:
    """Secrets go through every path; then the logs, every file and every output are searched."""
    home = tmp_path / "home"
    home.mkdir()
    smtp_password, destination_password = secrets.token_hex(16), secrets.token_hex(16)
    webhook_secret, destination_secret = _whsec(), _whsec()
    basic_password = secrets.token_hex(12)
    guesses = [f"ntd_{secrets.token_urlsafe(32)}" for _ in range(3)]
    # Ad-hoc recipients whose URLs carry tokens: stored encrypted, shown masked.
    hook_path, hook_query = secrets.token_hex(16), secrets.token_hex(16)
    apprise_password, apprise_path = secrets.token_hex(12), secrets.token_hex(16)
    mailbox = Mailbox()
    with (
        Receiver() as receiver,
        SmtpServer(
            mailbox,
            authenticator=password_checker(mailbox, "mailer", smtp_password),
            auth_require_tls=False,
        ) as smtp,
    ):
        config = home / "notifyd.toml"
        config.write_text(
            f"""
[smtp]
host = "127.0.0.1"
port = {smtp.port}
username = "mailer"
password = "{smtp_password}"

[webhook]
secret = "{webhook_secret}"
allow_cidrs = ["127.0.0.0/8"]

[destinations.relay]
channel = "webhook"
to = ["{receiver.url}"]
webhook = {{ secret = "{destination_secret}" }}

[destinations.mail]
channel = "email"
to = ["team@example.com"]
smtp = {{ password = "{destination_password}" }}
"""
        )
        server = ServerProcess(
            home,
            env={
                "NOTIFYD_CONFIG": str(config),
                "NOTIFYD_ACCESS_LOG": "true",
                # This test presents many bad tokens on purpose.
                "NOTIFYD_AUTH_FAILURE_BURST": "1000",
            },
            log_level="debug",
        )
        tokens = {
            scope: server.cli("tokens", "create", f"t-{scope}", "--scope", scope).stdout.strip()
            for scope in ("send", "read", "admin")
        }
        outputs: list[str] = []
        with server:
            http = httpx.Client(base_url=server.url)
            send = {"Authorization": f"Bearer {tokens['send']}"}
            notes = [
                {"to": "ops", "message": "log"},
                {"channel": "email", "to": "ops@example.com", "message": "mail"},
                {"channel": "webhook", "to": receiver.url, "message": "hook"},
                {
                    "channel": "webhook",
                    "to": f"{receiver.url}/hooks/{hook_path}?key={hook_query}",
                    "message": "hook with a token in its URL",
                },
                {
                    "channel": "apprise",
                    "to": f"json://notifyd:{apprise_password}@127.0.0.1:{receiver.port}"
                    f"/a/{apprise_path}",
                    "message": "apprise with a password",
                },
                {"destination": "relay", "message": "hook via destination"},
                {"destination": "mail", "message": "mail via destination"},
            ]
            accepted = [http.post("/v1/notifications", json=n, headers=send) for n in notes]
            assert [r.status_code for r in accepted] == [202] * len(notes), [
                r.text for r in accepted
            ]
            run_ids = [t["id"] for r in accepted for t in r.json()["tasks"]]

            def finished() -> bool:
                statuses = [
                    http.get(f"/v1/tasks/{run_id}", headers=send).json()["status"]
                    for run_id in run_ids
                ]
                return all(status in FINISHED for status in statuses)

            wait_for(finished, timeout=60, what="every delivery to finish")
            # The mail destination's own password is refused by this SMTP server: an error path.
            assert len(mailbox.messages) == 1 and receiver.count() == 4

            paths = [
                "/v1/tasks",
                "/v1/tasks/stats",
                "/v1/destinations",
                *(f"/v1/tasks/{r}" for r in run_ids),
            ]
            presented = [
                *(f"Bearer {t}" for t in [*tokens.values(), *guesses]),
                "Basic " + base64.b64encode(f"admin:{basic_password}".encode()).decode(),
                f"Bearer {guesses[0]}x",
            ]
            for path in paths:
                for header in presented:
                    outputs.append(http.get(path, headers={"Authorization": header}).text)
            # Tokens in the query (as ntfy and Gotify clients send them) stay out of the access log.
            for name in ("auth", "token", "access_token"):
                outputs.append(http.get("/v1/tasks", params={name: tokens["read"]}).text)
            # So does one misplaced in another parameter or in the path (the answers may echo
            # it back to its sender: only the log is looked at).
            for target in ("/v1/tasks?t={}", "/v1/tasks?%74oken={}", "/v1/tasks/{}"):
                http.get(target.format(tokens["read"]))
            outputs.append(
                http.post(
                    "/v1/notifications",
                    json={"to": "ops", "message": 5},
                    headers={"Authorization": f"Bearer {tokens['send']}"},
                ).text
            )
            env = {"NOTIFYD_TOKEN": tokens["send"]}
            outputs.append(server.cli("tokens", "list").stdout)
            outputs.append(server.cli("tokens", "list", "--all", "--json").stdout)
            outputs.append(server.cli("tasks", "list", "--json").stdout)
            outputs += [server.cli("tasks", "show", r, "--json").stdout for r in run_ids]
            sent = subprocess.run(
                [NOTIFYD, "send", "--to", "ops", "-m", "cli", "--wait"],
                env={**server.env, **env},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert sent.returncode == 0, sent.stderr
            outputs += [sent.stdout, sent.stderr]
            refused = subprocess.run(
                [NOTIFYD, "send", "--to", "ops", "-m", "cli"],
                env={**server.env, "NOTIFYD_TOKEN": guesses[1]},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert refused.returncode == 1
            outputs += [refused.stdout, refused.stderr]
            http.close()
        log = server.log()
        assert "Traceback" not in log
        assert "DEBUG" in log and "GET /v1/tasks" in log  # the search has something to search
        delivered = json.dumps([d for d in receiver.deliveries]) + str(mailbox.messages)

    secret_values = {
        "smtp password": smtp_password,
        "destination smtp password": destination_password,
        "webhook secret": webhook_secret,
        "webhook key": webhook_secret.removeprefix("whsec_"),
        "destination webhook secret": destination_secret,
        "basic password": basic_password,
        "webhook URL path token": hook_path,
        "webhook URL query token": hook_query,
        "apprise URL password": apprise_password,
        "apprise URL path token": apprise_path,
        "smtp auth": base64.b64encode(f"\0mailer\0{smtp_password}".encode()).decode(),
        **{f"token {scope}": token for scope, token in tokens.items()},
        **{f"token {scope} body": token[4:] for scope, token in tokens.items()},
        **{f"guess {n}": guess for n, guess in enumerate(guesses)},
    }
    files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p != config}
    assert any(p.name.endswith(".db") for p in files) and server.log_path in files
    for what, value in secret_values.items():
        for file, content in files.items():
            assert value.encode() not in content, f"{what} found in {file.name}"
        for output in outputs:
            assert value not in output, f"{what} found in output: {output[:200]}"
        assert value not in delivered, f"{what} sent to a peer"
