"""The ``email`` channel: one message per recipient over SMTP (aiosmtplib).

The subject and text body come from the notification; a string in ``data["html"]`` becomes an
HTML alternative. The Message-ID derives from the delivery id, so a retry that reaches the
mailbox twice is recognisable as the same message. 4xx replies, refused connections and timeouts
are transient; 5xx replies and invalid addresses are permanent. The reply is recorded.

No header notifyd writes ever carries a line break, whatever the Python version: the subject is
made one line and RFC 2047-encoded here (Python's email package would decode encoded-words a
client wrote, and CPython before 3.11.10 writes out the CR/LF they hide, CVE-2024-6923); an
address is one mailbox with no control characters, refused at submit otherwise; and the bytes
sent are checked to hold exactly the header lines the message set, or nothing is sent.
"""

from __future__ import annotations

import base64
import io
import unicodedata
from email import policy as policies
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.generator import BytesGenerator
from email.headerregistry import Address, AddressHeader, BaseHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from typing import Any, ClassVar

import aiosmtplib

from notifyd.channels.base import (
    Channel,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    overlay,
)
from notifyd.config import SmtpSettings
from notifyd.timeutil import utcnow

HTML_KEY = "html"
DATA_OK = 250  # the only success reply to DATA (RFC 5321 4.3.2)


SUBJECT_LIMIT = 200
# Characters that end a line somewhere (CR, LF, NEL, U+2028, U+2029, VT, FF, …) or are not text.
_NOT_TEXT = frozenset({"Cc", "Cs", "Zl", "Zp"})
_WORD_BYTES = 45  # UTF-8 bytes per encoded-word: 72 characters once base64'd and framed


def _control_character(text: str) -> str | None:
    return next((ch for ch in text if unicodedata.category(ch) in _NOT_TEXT), None)


def parse_address(value: str) -> Address:
    """``user@domain`` or ``Name <user@domain>`` as an Address; ValueError when it is not exactly
    one mailbox, or when it (or its decoded display name) holds a line break or control character.
    """
    text = value.strip()
    for part in (text, *_decoded_names(text)):
        bad = _control_character(part)
        if bad is not None:
            raise ValueError(
                f"an email address must not contain line breaks or control characters "
                f"(U+{ord(bad):04X})"
            )
    address = _one_mailbox(text)
    if address is None or not address.username or not address.domain:
        raise ValueError(f"{text!r} is not one email address")
    # Its canonical form must read back as itself: a display name whose decoded text is again
    # an encoded-word would change meaning each time a mail program read it.
    if _one_mailbox(str(address)) != address:
        raise ValueError(f"{text!r} has a display name that does not read back as itself")
    return address


def _address_list(text: str) -> tuple[AddressHeader, list[Any]] | None:
    """``text`` read as a ``To`` header by the email package's strict parser, and its defects."""
    try:
        header = policies.default.header_factory("To", text)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return None  # e.g. an encoded-word that decodes to CR/LF
    assert isinstance(header, AddressHeader) and isinstance(header, BaseHeader)
    return header, list(header.defects)


def _one_mailbox(text: str) -> Address | None:
    """The single mailbox ``text`` is; None if it is anything else or the parser had doubts."""
    parsed = _address_list(text)
    if parsed is None:
        return None
    header, defects = parsed
    if any(not isinstance(defect, NonASCIILocalPartDefect) for defect in defects):
        return None
    if len(header.groups) != 1 or header.groups[0].display_name is not None:
        return None
    if len(header.addresses) != 1:
        return None
    address = header.addresses[0]
    try:
        return Address(display_name=address.display_name, addr_spec=address.addr_spec)
    except (ValueError, HeaderParseError):
        return None


def _decoded_names(text: str) -> list[str]:
    parsed = _address_list(text)
    return [address.display_name for address in parsed[0].addresses] if parsed else []


class EncodedHeader(str):
    """A header value written as given: one line of text, encoded here (RFC 2047 when needed).

    The email policy stores a value that has a ``name`` as is and asks it to ``fold`` itself,
    so the text is never parsed (no encoded-word in it is decoded).
    """

    name: str

    def __new__(cls, name: str, text: str) -> EncodedHeader:
        value = super().__new__(cls, one_line(text))
        value.name = name
        return value

    def fold(self, *, policy: Policy) -> str:
        """``Name: value`` and the line ending, folded between encoded-words."""
        if self.isascii() and self.isprintable() and "=?" not in self:
            words = [str(self)]
        else:
            words = [_encoded_word(chunk) for chunk in _chunks(str(self))]
        return f"{self.name}: " + f"{policy.linesep} ".join(words) + policy.linesep


def one_line(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """``text`` with every line break, control character and run of spaces made one space."""
    cleaned = "".join(" " if unicodedata.category(ch) in _NOT_TEXT else ch for ch in text)
    line = " ".join(cleaned.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _chunks(text: str) -> list[str]:
    chunks = [""]
    for ch in text:
        if len((chunks[-1] + ch).encode()) > _WORD_BYTES:
            chunks.append("")
        chunks[-1] += ch
    return chunks


def _encoded_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


# ntfy's 1-5 (5 urgent) as mail clients read it: X-Priority 1 is the highest; 3 sets nothing.
_X_PRIORITY = {5: "1 (Highest)", 4: "2 (High)", 2: "4 (Low)", 1: "5 (Lowest)"}


def priority_headers(priority: int) -> dict[str, str]:
    """``X-Priority`` and ``Importance`` for a notification's priority (none for normal)."""
    if priority not in _X_PRIORITY:
        return {}
    return {"X-Priority": _X_PRIORITY[priority], "Importance": "high" if priority > 3 else "low"}


def build_message(message: OutgoingMessage, recipient: str, sender: str) -> EmailMessage:
    """The email for one notification and one recipient."""
    mail = EmailMessage()
    from_address = parse_address(sender)
    mail["From"] = str(from_address)
    mail["To"] = str(parse_address(recipient))
    mail["Subject"] = EncodedHeader(
        "Subject", message.subject or message.message.strip().split("\n", 1)[0]
    )
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{message.delivery_id}@{from_address.domain}>"
    mail["Auto-Submitted"] = "auto-generated"
    for name, value in priority_headers(message.priority).items():
        mail[name] = value
    mail["X-Notifyd-Notification"] = EncodedHeader(
        "X-Notifyd-Notification", message.notification_id
    )
    mail.set_content(message.message)
    html = (message.data or {}).get(HTML_KEY)
    if isinstance(html, str) and html.strip():
        mail.add_alternative(html, subtype="html")
    return mail


def serialise(mail: EmailMessage, *, utf8: bool, cte_type: str) -> bytes:
    """The bytes to send (as aiosmtplib flattens), checked to hold exactly ``mail``'s headers."""
    policy = (policies.SMTPUTF8 if utf8 else policies.SMTP).clone(cte_type=cte_type)
    with io.BytesIO() as out:
        BytesGenerator(out, policy=policy).flatten(mail)
        data = out.getvalue()
    head = data.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        # Bare CR and LF are line ends to SMTP servers; NEL, U+2028 and U+2029 to some readers.
        if any(
            mark in line for mark in (b"\r", b"\n", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
        ):
            raise ValueError("a header would carry a line break")
        if line[:1] not in (b" ", b"\t"):
            names.append(line.split(b":", 1)[0].decode("ascii", "replace").lower())
    if names != [name.lower() for name in mail]:
        raise ValueError("the serialised headers are not the ones the message set")
    return data


class EmailChannel(Channel):
    """Sends through the configured SMTP server (a destination may override any setting)."""

    name: ClassVar[str] = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def validate_recipient(self, recipient: str) -> str:
        """An email address, canonical (``Name <user@domain>`` or ``user@domain``)."""
        return str(parse_address(recipient))

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Send one email; return the server's reply."""
        destination = message.destination
        smtp = overlay(self.settings, destination.smtp if destination else None)
        server = f"{smtp.host}:{smtp.port}"
        try:
            mail = build_message(message, recipient, smtp.from_address)
            envelope = (
                parse_address(smtp.from_address).addr_spec,
                parse_address(recipient).addr_spec,
            )
        except ValueError as exc:
            raise PermanentDeliveryError(f"cannot address the email: {exc}") from None
        client = aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout,
            cert_bundle=str(smtp.ca_file) if smtp.ca_file else None,
        )
        try:
            async with client:
                reply = await _send(client, mail, *envelope)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            raise _reply_error(server, refused.code, refused.message) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _reply_error(server, exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientDeliveryError(
                f"SMTP server {server}: {detail}", response={"server": server}
            ) from None
        return {"server": server, "code": DATA_OK, "message": reply}

    async def aclose(self) -> None:
        """Each delivery opens and closes its own connection."""


async def _send(client: aiosmtplib.SMTP, mail: EmailMessage, sender: str, recipient: str) -> str:
    """Send ``mail`` as aiosmtplib's ``send_message`` would, but only bytes ``serialise`` checked
    and to the envelope given (never one read from the headers)."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    options = []
    utf8 = not (sender + recipient).isascii()
    if utf8:
        options.append("SMTPUTF8")
    eight_bit = client.supports_extension("8BITMIME")
    if eight_bit:
        options.append("BODY=8BITMIME")
    try:
        data = serialise(mail, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
    except ValueError as exc:
        raise PermanentDeliveryError(f"cannot write the email: {exc}") from None
    _, reply = await client.sendmail(sender, [recipient], data, mail_options=options)
    return reply


def _reply_error(server: str, code: int, text: str) -> Exception:
    response = {"server": server, "code": code, "message": text}
    reason = f"SMTP server {server} answered {code} {text}"
    if 500 <= code < 600:
        return PermanentDeliveryError(reason, response=response)
    return TransientDeliveryError(reason, response=response)
