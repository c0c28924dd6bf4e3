"""The email channel against a real aiosmtpd server on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from notifyd.channels.base import PermanentDeliveryError, TransientDeliveryError
from notifyd.channels.email import EmailChannel
from notifyd.config import SmtpSettings
from tests.channels.conftest import Serve
from tests.channels.helpers import outgoing, submit, wait_run
from tests.channels.peers import (
    Mailbox,
    SilentServer,
    SmtpServer,
    password_checker,
    server_tls_context,
)
from tests.support import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain(mailbox: Mailbox) -> Any:
    with SmtpServer(mailbox) as server:
        yield server


def smtp(port: int, **fields: Any) -> SmtpSettings:
    values: dict[str, Any] = {"from_address": "notifyd@example.org", "timeout": 5, **fields}
    return SmtpSettings(host="127.0.0.1", port=port, **values)


async def test_plain_delivery_headers_and_body(plain: SmtpServer, mailbox: Mailbox) -> None:
    channel = EmailChannel(smtp(plain.port))
    result = await channel.send(outgoing(), "Ops Team <ops@example.org>")

    assert result == {"server": f"127.0.0.1:{plain.port}", "code": 250, "message": "OK queued"}
    assert mailbox.envelopes == [("notifyd@example.org", ["ops@example.org"])]
    [mail] = mailbox.messages
    assert mail["From"] == "notifyd@example.org"
    assert mail["To"] == "Ops Team <ops@example.org>"
    assert mail["Subject"] == "Disk almost full"
    assert mail["Message-ID"] == "<run_test0001@example.org>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"]
    assert not mail.is_multipart()
    assert mail.get_content().strip() == "db-1 is at 91% disk."


async def test_html_alternative_from_data(plain: SmtpServer, mailbox: Mailbox) -> None:
    channel = EmailChannel(smtp(plain.port))
    html = "<p>db-1 is at <b>91%</b> disk.</p>"
    await channel.send(outgoing(data={"html": html}), "ops@example.org")

    [mail] = mailbox.messages
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    assert text is not None and text.get_content().strip() == "db-1 is at 91% disk."
    assert rich is not None and rich.get_content().strip() == html


async def test_subject_defaults_to_first_line(plain: SmtpServer, mailbox: Mailbox) -> None:
    await EmailChannel(smtp(plain.port)).send(
        outgoing(subject=None, message="backup done\nall 3 volumes"), "ops@example.org"
    )
    assert mailbox.messages[0]["Subject"] == "backup done"


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
async def test_starttls_with_auth(
    mechanism: str, mailbox: Mailbox, ca: trustme.CA, ca_file: Path
) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    server = SmtpServer(
        mailbox,
        tls_context=server_tls_context(ca.issue_cert("127.0.0.1", "localhost")),
        require_starttls=True,
        auth_required=True,
        auth_exclude_mechanism=[other],
        authenticator=password_checker(mailbox, "alerts", "s3cret-pw"),
    )
    settings = smtp(
        server.port,
        security="starttls",
        username="alerts",
        password="s3cret-pw",
        ca_file=ca_file,
    )
    with server:
        await EmailChannel(settings).send(outgoing(), "ops@example.org")
    assert mailbox.logins == [f"{mechanism}:alerts"]
    assert len(mailbox.messages) == 1


async def test_implicit_tls(mailbox: Mailbox, ca: trustme.CA, ca_file: Path) -> None:
    context = server_tls_context(ca.issue_cert("127.0.0.1", "localhost"))
    with SmtpServer(mailbox, ssl_context=context) as server:
        await EmailChannel(smtp(server.port, security="tls", ca_file=ca_file)).send(
            outgoing(), "ops@example.org"
        )
    assert len(mailbox.messages) == 1


async def test_untrusted_certificate_is_transient(mailbox: Mailbox, ca: trustme.CA) -> None:
    context = server_tls_context(ca.issue_cert("127.0.0.1", "localhost"))
    server = SmtpServer(mailbox, tls_context=context, require_starttls=True)
    with server, pytest.raises(TransientDeliveryError):
        await EmailChannel(smtp(server.port, security="starttls")).send(
            outgoing(), "ops@example.org"
        )
    assert mailbox.messages == []


async def test_bad_password_is_permanent_with_the_reply(
    mailbox: Mailbox, ca: trustme.CA, ca_file: Path
) -> None:
    server = SmtpServer(
        mailbox,
        tls_context=server_tls_context(ca.issue_cert("127.0.0.1", "localhost")),
        auth_required=True,
        authenticator=password_checker(mailbox, "alerts", "right"),
    )
    settings = smtp(
        server.port, security="starttls", username="alerts", password="wrong", ca_file=ca_file
    )
    with server, pytest.raises(PermanentDeliveryError) as caught:
        await EmailChannel(settings).send(outgoing(), "ops@example.org")
    assert caught.value.response is not None
    assert caught.value.response["code"] == 535
    assert "wrong" not in str(caught.value)


@pytest.mark.parametrize(
    ("where", "reply", "error"),
    [
        ("rcpt", "550 5.1.1 no such user", PermanentDeliveryError),
        ("rcpt", "451 4.3.0 try again later", TransientDeliveryError),
        ("data", "554 5.7.1 message refused", PermanentDeliveryError),
        ("data", "452 4.3.1 mailbox full", TransientDeliveryError),
    ],
)
async def test_replies_are_classified_and_recorded(
    where: str, reply: str, error: type[Exception], plain: SmtpServer, mailbox: Mailbox
) -> None:
    setattr(mailbox, f"{where}_reply", reply)
    with pytest.raises(error) as caught:
        await EmailChannel(smtp(plain.port)).send(outgoing(), "ghost@example.org")
    code, _, text = reply.partition(" ")
    assert isinstance(caught.value, TransientDeliveryError | PermanentDeliveryError)
    assert caught.value.response == {
        "server": f"127.0.0.1:{plain.port}",
        "code": int(code),
        "message": text,
    }


async def test_refused_connection_is_transient() -> None:
    with pytest.raises(TransientDeliveryError):
        await EmailChannel(smtp(free_port())).send(outgoing(), "ops@example.org")


async def test_server_that_never_answers_times_out_transiently() -> None:
    with SilentServer() as silent, pytest.raises(TransientDeliveryError):
        await EmailChannel(smtp(silent.port, timeout=0.5)).send(outgoing(), "ops@example.org")


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "two@@example.org", "a b@example.org", "ops@example.org\r\nBcc: x@y.z", ""],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        EmailChannel(SmtpSettings()).validate_recipient(address)


def test_canonical_addresses() -> None:
    channel = EmailChannel(SmtpSettings())
    assert channel.validate_recipient("  ops@example.org ") == "ops@example.org"
    assert channel.validate_recipient("Ops Team <ops@example.org>") == "Ops Team <ops@example.org>"


def test_invalid_address_is_422_at_submit(serve: Serve) -> None:
    client = serve()
    response = client.post(
        "/v1/notifications",
        json={"channel": "email", "to": ["ok@example.org", "nope"], "message": "x"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("to[1]:")


def test_server_down_then_up_retry_delivers(serve: Serve, mailbox: Mailbox) -> None:
    port = free_port()
    client = serve(smtp=smtp(port))
    accepted = submit(client, channel="email", to="ops@example.org", subject="hi", message="body")
    run_id = accepted["tasks"][0]["id"]

    retrying = wait_run(client, run_id, "retrying")
    assert f"SMTP server 127.0.0.1:{port}" in retrying["last_error"]
    assert mailbox.messages == []

    with SmtpServer(mailbox, port=port):
        done = wait_run(client, run_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    [mail] = mailbox.messages
    assert mail["Message-ID"] == f"<{run_id}@example.org>"
    last = client.get(f"/v1/tasks/{run_id}").json()["attempts_detail"][-1]
    assert last["response"]["code"] == 250
