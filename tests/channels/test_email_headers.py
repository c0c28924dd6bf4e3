"""Email headers carry no client-made line: subjects and display names against a real aiosmtpd."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from notifyd.channels.base import PermanentDeliveryError
from notifyd.channels.email import EmailChannel, build_message, one_line, serialise
from notifyd.config import SmtpSettings
from tests.channels.conftest import Serve
from tests.channels.helpers import outgoing
from tests.channels.peers import Mailbox, SmtpServer

pytestmark = pytest.mark.anyio
SENDER = "notifyd@example.org"
HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Notifyd-Notification",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]


def b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


INJECTING_SUBJECTS = [
    "=?utf-8?q?Hi=0D=0ABcc:_evil@evil.test=0D=0AReply-To:_attacker@evil.test?=",
    "=?utf-8?q?Hi=0D=0AContent-Type:_text/html=0D=0A=0D=0A<b>owned</b>?=",
    b_word("Hi\r\nBcc: evil@evil.test\r\nReply-To: attacker@evil.test"),
    b_word("Hi\u2028Bcc: evil@evil.test\u0085Reply-To: attacker@evil.test"),
    "Hi =?utf-8?q?=0A?= Bcc: evil@evil.test",
    "Hi\rBcc: evil@evil.test\nReply-To: attacker@evil.test",
    "Hi\u2028Bcc: evil@evil.test\u2029\u0085Reply-To: attacker@evil.test\x0b\x0c\x1c",
]


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain(mailbox: Mailbox) -> Iterator[SmtpServer]:
    with SmtpServer(mailbox) as server:
        yield server


def channel(port: int) -> EmailChannel:
    return EmailChannel(SmtpSettings(host="127.0.0.1", port=port, from_address=SENDER, timeout=5))


@pytest.mark.parametrize("subject", INJECTING_SUBJECTS)
async def test_a_subject_never_adds_a_header(
    subject: str, plain: SmtpServer, mailbox: Mailbox
) -> None:
    await channel(plain.port).send(outgoing(subject=subject), "ops@example.org")

    assert mailbox.envelopes == [(SENDER, ["ops@example.org"])]
    [mail] = mailbox.messages
    assert list(mail.keys()) == HEADERS
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().strip() == "db-1 is at 91% disk."
    shown = str(mail["Subject"])
    assert not any(ch in shown for ch in "\r\n\u2028\u2029\u0085\x0b\x0c\x1c")
    assert shown == one_line(subject)


async def test_an_encoded_word_subject_arrives_as_the_text_the_client_wrote(
    plain: SmtpServer, mailbox: Mailbox
) -> None:
    subject = INJECTING_SUBJECTS[0]
    await channel(plain.port).send(outgoing(subject=subject), "ops@example.org")
    assert mailbox.messages[0]["Subject"] == subject


async def test_non_ascii_and_long_subjects_round_trip(plain: SmtpServer, mailbox: Mailbox) -> None:
    subject = "Диск почти заполнен: db-1 на 91% — 🚨 " * 4
    await channel(plain.port).send(outgoing(subject=subject), "José <jose@example.org>")
    [mail] = mailbox.messages
    assert mail["Subject"] == " ".join(subject.split())
    assert mail["To"] == "José <jose@example.org>"
    assert list(mail.keys()) == HEADERS


def test_every_serialised_header_line_is_one_the_message_set() -> None:
    mail = build_message(outgoing(subject=INJECTING_SUBJECTS[1]), "ops@example.org", SENDER)
    head = serialise(mail, utf8=False, cte_type="7bit").split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if line[:1] != b" "]
    assert names == HEADERS


REFUSED_RECIPIENTS = [
    "<evil@evil.test> ok@example.org",
    "ok@example.org <evil@evil.test>x",
    "x <ok@example.org> y",
    "A <ok@example.org>, B <evil@evil.test>",
    "ok@example.org, evil@evil.test",
    "team: ok@example.org, evil@evil.test;",
    "Ops\u2028Team <ops@example.org>",
    "Ops\u2029Team <ops@example.org>",
    "Ops\u0085Team <ops@example.org>",
    "Ops\x00Team <ops@example.org>",
    "Ops\x1bTeam <ops@example.org>",
    "Ops\rBcc: evil@evil.test <ops@example.org>",
    "=?utf-8?q?Ops=0D=0ABcc:_evil@evil.test?= <ops@example.org>",
    b_word("Ops\u2028Bcc: evil@evil.test") + " <ops@example.org>",
    b_word(b_word("Ops") + " x") + " <ops@example.org>",
]


@pytest.mark.parametrize("recipient", REFUSED_RECIPIENTS)
def test_recipients_that_hide_or_break_lines_are_refused(recipient: str) -> None:
    with pytest.raises(ValueError):
        EmailChannel(SmtpSettings()).validate_recipient(recipient)


def test_display_names_keep_working() -> None:
    validate = EmailChannel(SmtpSettings()).validate_recipient
    assert validate('"Doe, John" <john@example.org>') == '"Doe, John" <john@example.org>'
    assert validate("=?utf-8?q?Jos=C3=A9?= <jose@example.org>") == "José <jose@example.org>"
    assert validate("<ops@example.org>") == "ops@example.org"


def test_a_hidden_recipient_is_422_at_submit(serve: Serve) -> None:
    client = serve()
    for recipient in REFUSED_RECIPIENTS[:1] + REFUSED_RECIPIENTS[6:9]:
        response = client.post(
            "/v1/notifications",
            json={"channel": "email", "to": ["ok@example.org", recipient], "message": "x"},
        )
        assert response.status_code == 422, recipient
        assert response.json()["detail"].startswith("to[1]:")


async def test_a_stored_recipient_that_is_now_refused_fails_permanently(
    plain: SmtpServer, mailbox: Mailbox
) -> None:
    with pytest.raises(PermanentDeliveryError):
        await channel(plain.port).send(outgoing(), "<evil@evil.test> ok@example.org")
    assert mailbox.envelopes == []
