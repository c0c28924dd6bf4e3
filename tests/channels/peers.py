"""Real peers on loopback for the channel tests: an HTTP receiver and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What the receiver answers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    hold: threading.Event | None = None  # answer only once this is set (a peer that hangs)


class Receiver:
    """An HTTP server on 127.0.0.1 recording every request; ``replies[path]`` says what to answer.

    A list of replies is answered in turn (the last one repeats).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.replies: dict[str, Reply | list[Reply]] = {}
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    Received(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                reply = receiver.next_reply(self.path)
                if reply.hold is not None:
                    reply.hold.wait(30)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def next_reply(self, path: str) -> Reply:
        """The reply for ``path``: the next of its list, or the default 200."""
        reply = self.replies.get(path.split("?", 1)[0], Reply())
        if isinstance(reply, list):
            return reply.pop(0) if len(reply) > 1 else reply[0]
        return reply

    def on(self, path: str) -> list[Received]:
        """The requests made to ``path``."""
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for reply in self.replies.values():
            for each in reply if isinstance(reply, list) else [reply]:
                if each.hold is not None:
                    each.hold.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and can refuse with a chosen reply."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK queued"


def password_checker(mailbox: Mailbox, user: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting one user, recording who logged in."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        ):
            mailbox.logins.append(f"{mechanism}:{user}")
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in its own thread; ``start()`` again after ``stop()`` reuses the port."""

    def __init__(
        self,
        mailbox: Mailbox,
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **smtp: Any,
    ) -> None:
        self.mailbox = mailbox
        self.port = port or free_port()
        self.ssl_context = ssl_context  # implicit TLS; STARTTLS takes tls_context in ``smtp``
        self.smtp = smtp
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        """Listen and serve."""
        self.controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=self.ssl_context,
            server_hostname="localhost",
            **self.smtp,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """A TCP server that accepts connections and never says a word (an SMTP server that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class HangingServer:
    """A TCP server that accepts every connection and never answers; ``connections`` counts them.

    Closing it resets the connections it holds, which ends the clients' waits.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.on_accept: Callable[[int], object] | None = None  # called with the count so far
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connections(self) -> int:
        """How many connections it has accepted."""
        return len(self.held)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.on_accept is not None:
                self.on_accept(len(self.held))

    def __enter__(self) -> HangingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            conn.close()


def server_tls_context(cert: Any) -> ssl.SSLContext:
    """A server-side TLS context holding a trustme certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context
