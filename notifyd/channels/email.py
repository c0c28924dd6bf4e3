"""The ``email`` channel: one message per recipient over SMTP (aiosmtplib).

The subject and text body come from the notification; a string in ``data["html"]`` becomes an
HTML alternative. The Message-ID derives from the delivery id, so a retry that reaches the
mailbox twice is recognisable as the same message. 4xx replies, refused connections and timeouts
are transient; 5xx replies and invalid addresses are permanent. The reply is recorded.
"""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar

import aiosmtplib

from notifyd.channels.base import OutgoingMessage, PermanentDeliveryError, TransientDeliveryError
from notifyd.channels.options import destination_of, overlay
from notifyd.config import SmtpSettings
from notifyd.timeutil import utcnow

HTML_KEY = "html"
DATA_OK = 250  # the only success reply to DATA (RFC 5321 4.3.2)


def parse_address(value: str) -> Address:
    """``user@domain`` or ``Name <user@domain>`` as an Address; ValueError when it is not one."""
    text = value.strip()
    if "\r" in text or "\n" in text:
        raise ValueError("an email address must not contain line breaks")
    name, spec = parseaddr(text) if "<" in text else ("", text)
    if not spec:
        raise ValueError(f"{text!r} is not an email address")
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, HeaderParseError):
        raise ValueError(f"{text!r} is not an email address") from None
    if not address.username or not address.domain:
        raise ValueError(f"{text!r} is not an email address")
    return address


def build_message(message: OutgoingMessage, recipient: str, sender: str) -> EmailMessage:
    """The email for one notification and one recipient."""
    mail = EmailMessage()
    domain = parse_address(sender).domain
    mail["From"] = sender
    mail["To"] = recipient
    mail["Subject"] = _one_line(message.subject or message.message.strip().split("\n", 1)[0])
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{message.delivery_id}@{domain}>"
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Notifyd-Notification"] = message.notification_id
    mail.set_content(message.message)
    html = (message.data or {}).get(HTML_KEY)
    if isinstance(html, str) and html.strip():
        mail.add_alternative(html, subtype="html")
    return mail


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class EmailChannel:
    """Sends through the configured SMTP server (a destination may override any setting)."""

    name: ClassVar[str] = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def validate_recipient(self, recipient: str) -> str:
        """An email address, canonical (``Name <user@domain>`` or ``user@domain``)."""
        return str(parse_address(recipient))

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Send one email; return the server's reply."""
        destination = destination_of(message)
        smtp = overlay(self.settings, destination.smtp if destination else None)
        server = f"{smtp.host}:{smtp.port}"
        try:
            mail = build_message(message, str(parse_address(recipient)), smtp.from_address)
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
                _, reply = await client.send_message(mail)
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


def _reply_error(server: str, code: int, text: str) -> Exception:
    response = {"server": server, "code": code, "message": text}
    reason = f"SMTP server {server} answered {code} {text}"
    if 500 <= code < 600:
        return PermanentDeliveryError(reason, response=response)
    return TransientDeliveryError(reason, response=response)
